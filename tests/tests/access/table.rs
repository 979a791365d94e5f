//! The two lists the area compares: the "HTTP routes × roles" table of `spec/access.md`
//! (route → role → cell) and the routes the router serves (`node/src/server/routes.rs`).

use std::collections::{BTreeMap, BTreeSet};

/// The columns of the table, in order.
pub const ROLES: [&str; 7] = [
    "institution",
    "sme",
    "government",
    "provider",
    "operator",
    "auditor",
    "anonymous",
];

/// What one cell says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Past the gate: anything but the denials below (the text says what else applies).
    Allowed(String),
    /// Refused with this status and code.
    Denied { status: u16, code: String },
}

/// `(method, path)` of a route, e.g. `("POST", "/v1/transfers")`.
pub type Route = (String, String);

fn workspace_file(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("read {full}: {error}"))
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|cell| cell.trim().to_owned())
        .collect()
}

fn parse_cell(route: &str, role: &str, text: &str) -> Cell {
    if text.starts_with("allowed") {
        return Cell::Allowed(text.to_owned());
    }
    // "denied: 403 `not_permitted`" (anything after the code is commentary).
    let rest = text
        .strip_prefix("denied: ")
        .unwrap_or_else(|| panic!("{route} × {role}: unknown cell text {text:?}"));
    let (status, code) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("{route} × {role}: no code in {text:?}"));
    let code = code
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("{route} × {role}: the code is not in backticks: {text:?}"));
    Cell::Denied {
        status: status
            .parse()
            .unwrap_or_else(|_| panic!("{route} × {role}: bad status in {text:?}")),
        code: code.to_owned(),
    }
}

/// The table: route → role → cell.
pub fn spec_table() -> BTreeMap<Route, BTreeMap<&'static str, Cell>> {
    let text = workspace_file("spec/access.md");
    let section = text
        .split("## HTTP routes × roles")
        .nth(1)
        .expect("spec/access.md has the section \"HTTP routes × roles\"");
    let mut lines = section
        .lines()
        .skip_while(|line| !line.starts_with("| route |"));
    let header = cells(lines.next().expect("the table's header"));
    assert_eq!(header[1..], ROLES.map(str::to_owned), "the table's columns");
    lines.next(); // |---|
    let mut table = BTreeMap::new();
    for line in lines.take_while(|line| line.starts_with('|')) {
        let row = cells(line);
        assert_eq!(row.len(), 8, "a row of 8 cells: {line}");
        let route = row[0].trim_matches('`');
        let (method, path) = route
            .split_once(' ')
            .unwrap_or_else(|| panic!("route {route:?} is not `METHOD /path`"));
        let by_role = ROLES
            .iter()
            .zip(&row[1..])
            .map(|(role, text)| (*role, parse_cell(route, role, text)))
            .collect();
        let key = (method.to_owned(), path.to_owned());
        assert!(
            table.insert(key, by_role).is_none(),
            "{route} is in the table twice"
        );
    }
    table
}

/// Every `(method, path)` the router serves, read from `routes.rs`: each `.route("PATH", …)`
/// and the `get(` and `post(` method routers inside it.
pub fn router_routes() -> BTreeSet<Route> {
    let text = workspace_file("node/src/server/routes.rs");
    let router = text
        .split("Router::new()")
        .nth(1)
        .expect("routes.rs builds a Router::new()");
    let router = router.split(".fallback(").next().expect("the routes");
    let mut routes = BTreeSet::new();
    for chunk in router.split(".route(").skip(1) {
        let path = chunk
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("a route without a path: {chunk}"));
        let mut methods = 0;
        for method in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{method}(");
            let found = chunk.match_indices(&call).any(|(at, _)| {
                at == 0
                    || !chunk.as_bytes()[at - 1].is_ascii_alphanumeric()
                        && chunk.as_bytes()[at - 1] != b'_'
            });
            if found {
                methods += 1;
                routes.insert((method.to_ascii_uppercase(), path.to_owned()));
            }
        }
        assert!(methods > 0, "route {path} has no method the parser knows");
    }
    routes
}
