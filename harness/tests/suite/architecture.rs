//! `architecture::*`: the shape the code promises in ARCHITECTURE.md, checked.
//!
//! * No import loops between the modules of any crate. A module's imports
//!   are read from its source: `crate::`, `super::` and `self::` paths, `use`
//!   groups, and bare paths into its own child modules. Each resolves to the
//!   deepest module file it names; the crate root (`lib.rs`, `main.rs`) only
//!   declares and re-exports, so it is not a node. The graph must be acyclic.
//! * The black box: outside `embedded.rs` the harness never names the
//!   reference hub's crate, and the lean build does not depend on it.
//! * No private API: no code under `harness/src` (comments and unit tests
//!   aside) names a path of the reference hub's admin or control API; those
//!   are the profile's recipes (`fixtures/profiles/reference.toml`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use libtest_mimic::{Failed, Trial};

use crate::support::*;

pub fn trials() -> Vec<Trial> {
    let mut trials: Vec<Trial> = ["harness", "reference-server", "demo"]
        .into_iter()
        .map(|krate| {
            Trial::test(
                format!("architecture::no-import-loops::{krate}"),
                move || {
                    let graph = module_graph(&root().join(krate).join("src"))?;
                    let loops = loops(&graph);
                    check(loops.is_empty(), || {
                        format!(
                            "import loops in {krate}:\n{}",
                            loops
                                .iter()
                                .map(|l| describe_loop(l, &graph))
                                .collect::<Vec<_>>()
                                .join("\n")
                        )
                    })
                },
            )
        })
        .collect();
    trials.push(Trial::test("architecture::black-box", black_box));
    trials.push(Trial::test("architecture::no-private-api", no_private_api));
    trials.push(Trial::test(
        "architecture::every-action-documented",
        every_action_documented,
    ));
    trials
}

/// A module path within a crate, e.g. `["oauth", "token"]`.
type Module = Vec<String>;

/// Every module file under `src` and the modules each one imports.
fn module_graph(src: &Path) -> Result<BTreeMap<Module, BTreeSet<Module>>, Failed> {
    let mut files = BTreeMap::new();
    collect(src, src, &mut files)?;
    let mut graph = BTreeMap::new();
    for (module, path) in &files {
        if module.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(path).map_err(|e| Failed::from(e.to_string()))?;
        let mut imports = BTreeSet::new();
        for reference in references(&without_tests(&without_comments_and_strings(&text))) {
            if let Some(target) = resolve(module, &reference, &files) {
                if !target.is_empty() && &target != module {
                    imports.insert(target);
                }
            }
        }
        graph.insert(module.clone(), imports);
    }
    Ok(graph)
}

fn collect(
    src: &Path,
    dir: &Path,
    files: &mut BTreeMap<Module, std::path::PathBuf>,
) -> Result<(), Failed> {
    for entry in std::fs::read_dir(dir).map_err(|e| Failed::from(e.to_string()))? {
        let path = entry.map_err(|e| Failed::from(e.to_string()))?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                collect(src, &path, files)?;
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path
            .strip_prefix(src)
            .map_err(|e| Failed::from(e.to_string()))?;
        let mut module: Module = relative
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module == ["lib"] || module == ["main"] {
            module.clear();
        }
        files.insert(module, path);
    }
    Ok(())
}

/// The source without comments, with every string literal emptied.
fn without_comments_and_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push_str("\"\"");
            }
            // A char literal such as '"' must not open a string.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("\"'") || rest.starts_with("\\\"'") {
                    chars.nth(rest.find('\'').unwrap_or(0));
                    out.push_str("' '");
                } else {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Unit tests may reach anywhere: they are cut from the first `#[cfg(test)]` on.
fn without_tests(text: &str) -> String {
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// The paths a module's code names: `crate::a::b`, `super::x`, `self::y`,
/// the items of `use a::{b, c}` groups, and bare `child::item` paths.
fn references(code: &str) -> Vec<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == ':');
        if starts_word && (bytes[i].is_ascii_alphabetic() || bytes[i] == '_') {
            let mut j = i;
            while j < bytes.len()
                && (is_ident(bytes[j]) || (bytes[j] == ':' && bytes.get(j + 1) == Some(&':')))
            {
                j += if bytes[j] == ':' { 2 } else { 1 };
            }
            let raw: String = bytes[i..j].iter().collect();
            let path = raw.trim_end_matches(':').to_owned();
            // `use base::{a, b::c}`: each item is a path of its own.
            if raw.ends_with("::") && bytes.get(j) == Some(&'{') {
                let end = bytes[j..]
                    .iter()
                    .position(|&c| c == ';')
                    .map_or(bytes.len(), |p| j + p);
                let group: String = bytes[j..end].iter().collect();
                for item in group.split([',', '{', '}', ' ', '\n']) {
                    let item = item.trim();
                    if item.starts_with(|c: char| c.is_ascii_alphabetic()) {
                        found.push(format!("{path}::{item}"));
                    }
                }
            } else if path.contains("::") {
                found.push(path);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// The deepest module file that `reference`, read in `module`, names.
fn resolve(
    module: &Module,
    reference: &str,
    files: &BTreeMap<Module, std::path::PathBuf>,
) -> Option<Module> {
    let mut parts = reference.split("::").peekable();
    let mut base: Module = match *parts.peek()? {
        "crate" => {
            parts.next();
            Vec::new()
        }
        "super" => {
            let mut base = module.clone();
            while parts.peek() == Some(&"super") {
                parts.next();
                base.pop();
            }
            base
        }
        "self" => {
            parts.next();
            module.clone()
        }
        // A bare path: only a child module of this one counts.
        first => {
            let mut child = module.clone();
            child.push(first.to_owned());
            if !files.contains_key(&child) {
                return None;
            }
            module.clone()
        }
    };
    let mut deepest = files.contains_key(&base).then(|| base.clone());
    for part in parts {
        base.push(part.to_owned());
        if files.contains_key(&base) {
            deepest = Some(base.clone());
        } else {
            break;
        }
    }
    deepest
}

/// The strongly connected components with more than one module (Tarjan).
fn loops(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        on_stack: BTreeSet<&'g Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let Some((w, _)) = self.graph.get_key_value(w) else {
                    continue;
                };
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !tarjan.index.contains_key(v) {
            tarjan.visit(v);
        }
    }
    tarjan.found
}

fn describe_loop(component: &[Module], graph: &BTreeMap<Module, BTreeSet<Module>>) -> String {
    let name = |m: &Module| m.join("::");
    let mut out = format!(
        "  {}:",
        component.iter().map(name).collect::<Vec<_>>().join(", ")
    );
    for from in component {
        for to in graph[from].iter().filter(|to| component.contains(to)) {
            out.push_str(&format!("\n    {} -> {}", name(from), name(to)));
        }
    }
    out
}

/// The harness names the reference hub's crate in `embedded.rs` only, and
/// its lean build (`--no-default-features`) does not depend on it.
fn black_box() -> Result<(), Failed> {
    let src = root().join("harness/src");
    let mut files = BTreeMap::new();
    collect(&src, &src, &mut files)?;
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).map_err(|e| Failed::from(e.to_string()))?;
        check(
            module == &["embedded"] || !text.contains("reference_server"),
            || format!("{} names reference_server", path.display()),
        )?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tree = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "harness",
            "--no-default-features",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .current_dir(root())
        .output()
        .map_err(|e| Failed::from(format!("cargo tree: {e}")))?;
    let listing = String::from_utf8_lossy(&tree.stdout);
    check(tree.status.success() && listing.contains("harness"), || {
        format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&tree.stderr)
        )
    })?;
    check(
        !listing
            .lines()
            .any(|l| l.starts_with("reference-server") || l.starts_with("demo ")),
        || "the lean harness (--no-default-features) depends on reference-server or demo".into(),
    )
}

/// scenarios/README.md's actions table has a row for every action of the catalogue,
/// and no row for an action that does not exist.
fn every_action_documented() -> Result<(), Failed> {
    let readme = std::fs::read_to_string(root().join("scenarios/README.md"))
        .map_err(|e| Failed::from(e.to_string()))?;
    let section = readme
        .split("## Actions and their facts")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .ok_or("scenarios/README.md has no \"Actions and their facts\" section")?;
    let documented: BTreeSet<&str> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name))
        .collect();
    let catalogue: BTreeSet<&str> = harness::steps::catalogue()
        .iter()
        .map(|entry| entry.name)
        .collect();
    let undocumented: Vec<_> = catalogue.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&catalogue).collect();
    check(undocumented.is_empty() && unknown.is_empty(), || {
        format!(
            "scenarios/README.md: no row for {undocumented:?}; rows for unknown actions {unknown:?}"
        )
    })
}

/// Paths of the reference hub's own admin and control APIs (docs/admin-api.md,
/// docs/control-api.md, docs/connections.md): the harness reaches them only
/// through the profile's recipes, so its code never spells one.
const PRIVATE_PATHS: &[&str] = &[
    "/policies",
    "/agents",
    "/consents/revoke",
    "/keys/rotate",
    "/audit/failure",
    "/cimd/trust",
    "/clock",
    "/connections/",
    "/authorizations/",
    "/control/",
    "\"/control\"",
    "/admin/",
    "\"/admin\"",
    "/audit?",
];

/// The source without comments; string literals kept.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                out.push(c);
                let mut escaped = false;
                for c in chars.by_ref() {
                    out.push(c);
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
            }
            // A char literal such as '"' must not open a string.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("\"'") || rest.starts_with("\\\"'") {
                    chars.nth(rest.find('\'').unwrap_or(0));
                    out.push_str("' '");
                } else {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn no_private_api() -> Result<(), Failed> {
    let src = root().join("harness/src");
    let mut files = BTreeMap::new();
    collect(&src, &src, &mut files)?;
    check(files.len() > 20, || {
        format!("only {} files read under harness/src", files.len())
    })?;
    let mut found = Vec::new();
    for path in files.values() {
        let text = std::fs::read_to_string(path).map_err(|e| Failed::from(e.to_string()))?;
        let code = without_tests(&without_comments(&text));
        for (n, line) in code.lines().enumerate() {
            for private in PRIVATE_PATHS.iter().filter(|p| line.contains(**p)) {
                found.push(format!(
                    "{}:{}: `{private}` in {}",
                    path.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    // The check must see strings: a path in one is what it looks for.
    check(
        without_comments("let u = \"/admin/x\"; // \"/clock\"").contains("/admin/x")
            && !without_comments("// \"/clock\"").contains("/clock"),
        || "without_comments keeps the wrong parts".into(),
    )?;
    check(found.is_empty(), || {
        format!(
            "the harness names the hub's private API (write a recipe in the profile instead):\n  {}",
            found.join("\n  ")
        )
    })
}
