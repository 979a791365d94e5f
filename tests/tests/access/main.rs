//! Test area `access`: the "HTTP routes × roles" table of `spec/access.md`, cell by cell, and
//! the HTTP API's bounds under load, against a 3-node cluster of real `cbank` processes.
//!
//! The table is read from the spec and the routes from `node/src/server/routes.rs`, so neither
//! can gain a route the other lacks (t10). Every write cell signs its route's command for a
//! party of the column's role (anonymous: a key no party holds) and checks the answer against
//! the cell: denied cells get exactly their status and code; allowed cells get past the role
//! gate. Reads carry no identity and are tried once each, standing for their seven public
//! cells; admin routes are tried with the node's token, a wrong one and none (t10). A node
//! that serves `HTTP_REQUESTS_IN_FLIGHT_MAX` requests answers `429 overloaded` at once, and a
//! request whose body never comes is ended with `408 body_timeout`, freeing its place (t20).
//!
//! Run with `cargo test -p tests --test access`.

mod table;

mod t10_every_cell;
mod t20_back_pressure;
