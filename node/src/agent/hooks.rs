//! Allocation hooks: the command the agent runs for each granted allocation, so that a
//! scheduler (Slurm, Kubernetes) or a script can hand the GPUs to the drawer.
//!
//! The hook runs in its own process group, with stdin closed and stdout/stderr appended to
//! `<state_dir>/hooks/<allocation_id>.log` (the agent's stdout is its JSON event log). It is
//! wrapped in `sh -c '"$@"; …'` that writes the hook's exit code to
//! `<state_dir>/hooks/<allocation_id>.exit` when it ends, so an agent restarted while a hook
//! runs (hooks are never killed when the agent stops) can still learn how and when it ended:
//! it watches the process group by id and reads the exit file. At the allocation's end the
//! agent sends SIGTERM to the group, then SIGKILL after a grace period.
//!
//! This module starts, watches and stops processes; it never talks to a node.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The wrapper script: runs the hook (its argv follows as `$@`), then records its exit code
/// atomically in `$CBANK_EXIT_FILE` and exits with it. A hook killed by a signal takes the
/// shell with it (same process group), so no exit file means "ended by a signal".
const WRAPPER: &str = r#""$@"; code=$?; printf '%s\n' "$code" > "$CBANK_EXIT_FILE.tmp" && mv -f "$CBANK_EXIT_FILE.tmp" "$CBANK_EXIT_FILE"; exit "$code""#;

/// The folder of hook logs and exit files.
pub fn hooks_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("hooks")
}

fn exit_file(state_dir: &Path, allocation_id: u128) -> PathBuf {
    hooks_dir(state_dir).join(format!("{allocation_id}.exit"))
}

/// How a hook stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookState {
    Running,
    /// It ended: `code` is its exit code (`None`: killed by a signal, or unknown), `at_ns`
    /// when it ended if known from its exit file (else: when the agent noticed).
    Exited {
        code: Option<i32>,
        at_ns: Option<u64>,
    },
}

/// A hook the agent watches: its own child, or one an earlier run of the agent started.
pub struct Hook {
    child: Option<tokio::process::Child>,
    /// Process id of the wrapper, which is also the process group id.
    pid: Option<u32>,
    exit_file: PathBuf,
}

impl Hook {
    /// Starts `argv` for allocation `allocation_id` with `env` added to the agent's
    /// environment. The child is not killed when the agent exits.
    pub fn spawn(
        state_dir: &Path,
        allocation_id: u128,
        argv: &[String],
        env: &[(String, String)],
    ) -> std::io::Result<Hook> {
        let dir = hooks_dir(state_dir);
        std::fs::create_dir_all(&dir)?;
        let exit_file = exit_file(state_dir, allocation_id);
        // A leftover from an earlier attempt must not be read as this run's end.
        match std::fs::remove_file(&exit_file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{allocation_id}.log")))?;
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg("cbank-hook")
            .args(argv)
            .envs(
                env.iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            )
            .env("CBANK_EXIT_FILE", &exit_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(false);
        let child = command.spawn()?;
        let pid = child.id();
        Ok(Hook {
            child: Some(child),
            pid,
            exit_file,
        })
    }

    /// A hook an earlier run of the agent started (`pid` if it was recorded).
    pub fn adopt(state_dir: &Path, allocation_id: u128, pid: Option<u32>) -> Hook {
        Hook {
            child: None,
            pid,
            exit_file: exit_file(state_dir, allocation_id),
        }
    }

    /// The process (group) id, if known.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether it still runs, and if not, how it ended.
    pub fn poll(&mut self) -> HookState {
        if let Some(child) = &mut self.child {
            return match child.try_wait() {
                Ok(Some(status)) => {
                    // Our own child: its status is exact; the exit file, if any, says when.
                    let at_ns = read_exit_file(&self.exit_file).and_then(|(_, at)| at);
                    HookState::Exited {
                        code: status.code(),
                        at_ns,
                    }
                }
                Ok(None) => HookState::Running,
                Err(error) => {
                    tracing::warn!(%error, "cannot check the hook's status");
                    HookState::Running
                }
            };
        }
        // The wrapper writes the exit file as its last act: once it exists the hook has ended,
        // even if its process is a zombie that an init which never reaps keeps "alive".
        if let Some((code, at_ns)) = read_exit_file(&self.exit_file) {
            return HookState::Exited {
                code: Some(code),
                at_ns,
            };
        }
        let alive = match self.pid {
            Some(pid) => group_alive(pid),
            // Started by an earlier run that died before recording the id: only the exit file
            // can tell.
            None => !self.exit_file.exists(),
        };
        if alive {
            return HookState::Running;
        }
        match read_exit_file(&self.exit_file) {
            Some((code, at_ns)) => HookState::Exited {
                code: Some(code),
                at_ns,
            },
            None => HookState::Exited {
                code: None,
                at_ns: None,
            },
        }
    }

    /// Sends `signal` to the hook's process group (nothing if it is unknown or gone).
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid.and_then(|pid| i32::try_from(pid).ok()) {
            if let Err(error) = killpg(Pid::from_raw(pid), signal) {
                if error != nix::errno::Errno::ESRCH {
                    tracing::warn!(%error, pid, ?signal, "cannot signal the hook");
                }
            }
        }
    }
}

/// Whether a process group still has members (a group we may not signal still exists).
fn group_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match killpg(Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(error) => error == nix::errno::Errno::EPERM,
    }
}

/// The exit code in an exit file and the file's modification time (when the hook ended).
fn read_exit_file(path: &Path) -> Option<(i32, Option<u64>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let code = text.trim().parse().ok()?;
    let at_ns = std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|duration| u64::try_from(duration.as_nanos()).ok());
    Some((code, at_ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn wait_exit(hook: &mut Hook) -> HookState {
        for _ in 0..200 {
            let state = hook.poll();
            if state != HookState::Running {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the hook did not end");
    }

    fn argv(script: &str) -> Vec<String> {
        vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]
    }

    #[tokio::test]
    async fn a_hook_gets_its_environment_and_its_exit_code_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![("CBANK_ALLOCATION_ID".to_owned(), "77".to_owned())];
        let mut hook = Hook::spawn(
            dir.path(),
            77,
            &argv("echo \"id=$CBANK_ALLOCATION_ID\"; exit 3"),
            &env,
        )
        .unwrap();
        let state = wait_exit(&mut hook).await;
        assert!(
            matches!(
                state,
                HookState::Exited {
                    code: Some(3),
                    at_ns: Some(_)
                }
            ),
            "{state:?}"
        );
        let log = std::fs::read_to_string(hooks_dir(dir.path()).join("77.log")).unwrap();
        assert_eq!(log.trim(), "id=77");
        // A restarted agent learns the same from the exit file.
        let mut adopted = Hook::adopt(dir.path(), 77, hook.pid());
        assert!(matches!(
            adopted.poll(),
            HookState::Exited { code: Some(3), .. }
        ));
    }

    #[tokio::test]
    async fn a_hook_that_cannot_run_fails_and_one_stopped_by_sigterm_has_no_code() {
        let dir = tempfile::tempdir().unwrap();
        let mut missing =
            Hook::spawn(dir.path(), 1, &["/nonexistent/cbank-hook".to_owned()], &[]).unwrap();
        assert!(matches!(
            wait_exit(&mut missing).await,
            HookState::Exited {
                code: Some(127),
                ..
            }
        ));

        let mut long = Hook::spawn(dir.path(), 2, &argv("sleep 30"), &[]).unwrap();
        assert_eq!(long.poll(), HookState::Running);
        // Seen from a restarted agent, the group is alive.
        let mut adopted = Hook::adopt(dir.path(), 2, long.pid());
        assert_eq!(adopted.poll(), HookState::Running);
        long.signal(Signal::SIGTERM);
        assert!(matches!(
            wait_exit(&mut long).await,
            HookState::Exited { code: None, .. }
        ));
        assert!(matches!(
            wait_exit(&mut adopted).await,
            HookState::Exited {
                code: None,
                at_ns: None
            }
        ));
    }
}
