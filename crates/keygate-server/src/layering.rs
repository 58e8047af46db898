//! Enforces the layering of the crate doc: a module refers only to modules of its own layer
//! or below, and the modules form no cycle. Read from the source (`crate::…` and `super::…`
//! paths outside `#[cfg(test)]`; a parent module depends on the modules it declares), so it
//! costs no build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom to top, as in the crate doc. A module is in the layer of the longest entry that
/// names it or one of its ancestors; the crate root is above them all.
const LAYERS: &[&[&str]] = &[
    &[
        "error",
        "secret",
        "cache",
        "metrics",
        "last_used",
        "extract",
        "request_id",
        "invalidation",
        "webhooks",
        "usage",
        "gateway::config",
    ],
    &["settings", "gateway::runtime"],
    &["state"],
    &["auth", "audit", "idempotency", "bootstrap", "pipeline"],
    &["gateway"],
    &["routes"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |name| (i, *name)))
        .filter(|(_, name)| module == *name || module.starts_with(&format!("{name}::")))
        .max_by_key(|(_, name)| name.len())
        .map_or(LAYERS.len(), |(i, _)| i)
}

/// Module path (`gateway::config`, `""` for the root) → source outside its tests.
fn sources(dir: &Path, module: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let child = match (module, stem) {
            (m, "mod" | "lib") => m.to_owned(),
            ("", s) => s.to_owned(),
            (m, s) => format!("{m}::{s}"),
        };
        if path.is_dir() {
            sources(&path, &child, out);
        } else if stem != "layering" && path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: Vec<&str> = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect();
            out.insert(child, code.join("\n"));
        }
    }
}

/// The modules `code` of `module` refers to.
fn references(module: &str, code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let before = code[..start].chars().last().unwrap_or(' ');
        if before.is_alphanumeric() || before == '_' || before == ':' {
            continue;
        }
        let mut path: Vec<String> = Vec::new();
        let mut rest = &code[start..];
        if let Some(r) = rest.strip_prefix("crate::") {
            rest = r;
        } else {
            path = module.split("::").map(str::to_owned).collect();
            while let Some(r) = rest.strip_prefix("super::") {
                path.pop();
                rest = r;
            }
        }
        // `a::b::{c, d::e}` names `a::b::c` and `a::b::d`.
        let head: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let tails: Vec<String> = match rest[head.len()..].strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|item| item.trim().to_owned())
                .collect(),
            None => vec![String::new()],
        };
        for tail in tails {
            let mut full = path.clone();
            full.extend(
                format!("{head}{tail}")
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            let target = (0..=full.len())
                .rev()
                .map(|n| full[..n].join("::"))
                .find(|m| modules.contains(m))
                .unwrap_or_default();
            found.insert(target);
        }
    }
    // A parent module depends on the modules it declares.
    found.extend(
        modules
            .iter()
            .filter(|m| {
                m.rsplit_once("::")
                    .map_or(!m.is_empty() && module.is_empty(), |(p, _)| p == module)
            })
            .cloned(),
    );
    found.remove(module);
    found
}

#[test]
fn a_module_refers_only_to_what_is_below_it() {
    let mut code = BTreeMap::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut code,
    );
    let modules: BTreeSet<String> = code.keys().cloned().collect();
    let graph: BTreeMap<&str, BTreeSet<String>> = code
        .iter()
        .map(|(m, text)| (m.as_str(), references(m, text, &modules)))
        .collect();
    assert!(
        graph["state"].contains("gateway::runtime"),
        "the scan sees imports"
    );

    let mut upward = Vec::new();
    for (module, targets) in &graph {
        for target in targets {
            if layer(target) > layer(module) {
                upward.push(format!("{module} -> {target}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports from a higher layer: {upward:?}");

    // No cycle: depth-first, reporting the path that closes one.
    fn visit<'a>(
        module: &'a str,
        graph: &'a BTreeMap<&str, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!("module cycle: {} -> {module}", path[at..].join(" -> "));
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for target in graph.get(module).into_iter().flatten() {
            visit(target, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}
