//! HTTP JSON bodies: what `POST /v1/commands`, every typed command route, the batch route and
//! the admin routes parse (`node::server::inputs::parse_body`, the extractor's own parser).
//!
//! The first byte picks the route's body type. Checks: parsing never panics and a failure is
//! `400 malformed_json`; deep nesting is refused, not a stack overflow (`serde_json` stops at
//! 128 levels); a command that parses serialises to JSON that parses to the same command; its
//! canonical bytes decode to the same command, or it is larger than `COMMAND_BYTES_MAX` (the
//! handler answers `413` then), so what a client signs over JSON is what the ledger applies.

use super::{check_canonical_round_trip, check_json_round_trip};
use ledger::limits::COMMAND_BYTES_MAX;
use ledger::SignedCommand;
use node::server::inputs::{parse_body, ParsedBody, BODIES};

pub fn run(data: &[u8]) {
    let Some((selector, bytes)) = crate::select(data) else {
        return;
    };
    let body = BODIES[usize::from(selector) % BODIES.len()];
    match parse_body(body, bytes) {
        Err(error) => {
            assert_eq!(error.status.as_u16(), 400, "{body:?}: {error:?}");
            assert_eq!(error.code, "malformed_json", "{body:?}: {error:?}");
            assert!(!error.message.is_empty());
        }
        Ok(ParsedBody::Command(command)) => check_command(&command),
        Ok(ParsedBody::Batch(commands)) => commands.iter().for_each(check_command),
        Ok(ParsedBody::Admin(text)) => assert!(!text.is_empty()),
    }
}

fn check_command(command: &SignedCommand) {
    check_json_round_trip(command);
    if command.to_bytes().len() <= COMMAND_BYTES_MAX {
        check_canonical_round_trip(command, COMMAND_BYTES_MAX);
    }
    let _ = command.signature_is_valid();
}
