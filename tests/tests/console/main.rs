//! Test area `console`: the web console in a real browser, against `cbank dev`.
//!
//! The fixture starts `cbank dev` (the README's command, on free ports, in a temporary folder),
//! so the console is met exactly as a newcomer meets it: the demo world, its key files and
//! the three nodes. `tests/console/console.mjs` then drives Debian's chromium through
//! playwright-core. An SME imports its key file, buys the token package with the demo voucher
//! paying 30% and sees its balance, quota and voucher change by the exact amounts; a
//! government issues a voucher and sees it in its programme's report; an auditor verifies the
//! chain, the node replaying it and the browser checking every node's checkpoint signature
//! with WebCrypto; the operator and institution views show their live data. Every kind of
//! form is given bad input and must show the API's `{code, message}` (t10). Each flow saves
//! a screenshot in `target/console-screenshots/<flow>.png` and the test prints the paths.
//! The routes the console relies on are checked without a browser: the bytes
//! `POST /v1/commands/canonical` returns are exactly `ledger`'s signing bytes, and bad input
//! gets a 4xx `{code, message}` there, at `GET /v1/audit/verify` and under `/console/` (t20).
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`, or `CBANK_CHROMIUM`) and Node.js;
//! `tests/console/node_modules` is installed with `npm ci` when missing. Without them the test
//! fails and says what to install: it never skips.
//!
//! Run with `cargo test -p tests --test console`.

mod fixture;

mod t10_browser_flows;
mod t20_console_routes;
