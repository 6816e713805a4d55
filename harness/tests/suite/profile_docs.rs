//! `profile_docs::*`: docs/profile.md, the target profile reference, keeps up
//! with the profile type.
//!
//! * `every-key-documented`: every TOML key of every struct deriving
//!   `Deserialize` in `harness/src/profile.rs` and `harness/src/recipe.rs`
//!   (the recipe's keys) (the field name, or its
//!   `#[serde(rename = "…")]`; `skip`/`skip_deserializing`/`flatten` fields
//!   are not keys) is the first cell of a table row in docs/profile.md
//!   (`` | `key` | ``); every such row names a real key; and every value of a
//!   `Deserialize` enum (`form`, `webhook`, …) appears there in backticks.
//! * `reference-profile-keys-documented`: every key and table name used in
//!   `fixtures/profiles/reference.toml` has a row, except the names users
//!   choose (entries of `resources`, `clients`, `users`,
//!   `authorization.clients`, `secrets`, and the contents of `fill`,
//!   `extra_params`, `extra_metadata` and of a recipe's `headers`, `query`,
//!   `body`, `read` and `each`).
//! * `every-operation-documented`: the operations table of docs/profile.md
//!   has a row for every operation the harness knows (and no other), naming
//!   each of its inputs and outputs.

use std::collections::BTreeSet;

use libtest_mimic::{Failed, Trial};

use harness::recipe::Operation;

use crate::support::*;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("profile_docs::every-key-documented", every_key_documented),
        Trial::test(
            "profile_docs::reference-profile-keys-documented",
            reference_profile_keys_documented,
        ),
        Trial::test(
            "profile_docs::every-operation-documented",
            every_operation_documented,
        ),
    ]
}

fn read(relative: &str) -> Result<String, Failed> {
    std::fs::read_to_string(root().join(relative))
        .map_err(|e| Failed::from(format!("{relative}: {e}")))
}

/// The keys docs/profile.md documents: the first cell of each table row,
/// when it is one backticked word.
fn documented_keys(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter_map(|line| line.trim_start().strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .filter(|(name, rest)| !name.is_empty() && rest.trim_start().starts_with('|'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// What profile.rs declares: the TOML keys of its structs and the values of
/// its enums, each with the type that declares it.
#[derive(Default)]
struct Declared {
    keys: Vec<(String, String)>,
    values: Vec<(String, String)>,
    structs: BTreeSet<String>,
}

/// The items of a serde attribute, e.g. `default = "ten"`, `skip`.
fn serde_items(attribute: &str) -> Vec<String> {
    attribute
        .split_once("serde(")
        .map(|(_, rest)| rest.trim_end().trim_end_matches(']').trim_end_matches(')'))
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The quoted value of `name = "value"` among serde items.
fn serde_value(items: &[String], name: &str) -> Option<String> {
    items.iter().find_map(|item| {
        let (key, value) = item.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn renamed(name: &str, rename_all: Option<&str>) -> Result<String, Failed> {
    match rename_all {
        None => Ok(name.to_owned()),
        Some("lowercase") => Ok(name.to_lowercase()),
        Some("snake_case") if !name.chars().any(|c| c.is_ascii_uppercase()) => Ok(name.to_owned()),
        Some(other) => Err(format!(
            "profile_docs: rename_all = \"{other}\" on `{name}`'s type is not supported by this test"
        )
        .into()),
    }
}

/// Reads a source file (profile.rs, recipe.rs) line by line: attributes
/// (single- or multi-line) are gathered until the item or field they belong to.
fn declared(source: &str) -> Result<Declared, Failed> {
    let mut declared = Declared::default();
    let mut attributes: Vec<String> = Vec::new();
    let mut open_attribute: Option<String> = None;
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if let Some(attr) = open_attribute.as_mut() {
            attr.push_str(trimmed);
            if balanced(attr) {
                attributes.push(open_attribute.take().unwrap_or_default());
            }
            continue;
        }
        if trimmed.starts_with("#[") {
            if balanced(trimmed) {
                attributes.push(trimmed.to_owned());
            } else {
                open_attribute = Some(trimmed.to_owned());
            }
            continue;
        }
        if trimmed.starts_with("//") || trimmed.is_empty() {
            continue;
        }
        let item_attributes = std::mem::take(&mut attributes);
        let deserialize = item_attributes
            .iter()
            .any(|a| a.starts_with("#[derive(") && a.contains("Deserialize"));
        let item = trimmed.strip_prefix("pub ").unwrap_or(trimmed);
        let (kind, rest) = match item.split_once(' ') {
            Some((kind @ ("struct" | "enum"), rest)) => (kind, rest),
            _ => continue,
        };
        if !deserialize || !trimmed.ends_with('{') {
            continue;
        }
        let name = rest
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or_default()
            .to_owned();
        let rename_all = item_attributes
            .iter()
            .filter(|a| a.starts_with("#[serde("))
            .find_map(|a| serde_value(&serde_items(a), "rename_all"));
        let mut member_attributes: Vec<String> = Vec::new();
        let mut members = 0;
        for line in lines.by_ref() {
            let member = line.trim();
            if line.starts_with('}') {
                break;
            }
            if member.starts_with("#[") {
                member_attributes.push(member.to_owned());
                continue;
            }
            if member.starts_with("//") || member.is_empty() {
                continue;
            }
            let attrs = std::mem::take(&mut member_attributes);
            let items: Vec<String> = attrs
                .iter()
                .filter(|a| a.starts_with("#[serde("))
                .flat_map(|a| serde_items(a))
                .collect();
            let skipped = items
                .iter()
                .any(|i| matches!(i.as_str(), "skip" | "skip_deserializing" | "flatten"));
            if kind == "struct" {
                let Some((field, _)) = member
                    .strip_prefix("pub ")
                    .unwrap_or(member)
                    .split_once(':')
                else {
                    return Err(
                        format!("profile_docs: cannot read field `{member}` of `{name}`").into(),
                    );
                };
                members += 1;
                if skipped {
                    continue;
                }
                let key = match serde_value(&items, "rename") {
                    Some(key) => key,
                    None => renamed(field.trim(), rename_all.as_deref())?,
                };
                declared.keys.push((name.clone(), key));
            } else {
                let variant = member
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or_default();
                members += 1;
                if skipped {
                    continue;
                }
                let value = match serde_value(&items, "rename") {
                    Some(value) => value,
                    None => renamed(variant, rename_all.as_deref())?,
                };
                declared.values.push((name.clone(), value));
            }
        }
        if members == 0 {
            return Err(format!("profile_docs: found no members in `{kind} {name}`").into());
        }
        if kind == "struct" {
            declared.structs.insert(name);
        }
    }
    Ok(declared)
}

fn balanced(attribute: &str) -> bool {
    attribute.matches('[').count() == attribute.matches(']').count()
}

fn every_key_documented() -> Result<(), Failed> {
    let doc = read("docs/profile.md")?;
    let recipe = declared(&read("harness/src/recipe.rs")?)?;
    let mut declared = declared(&read("harness/src/profile.rs")?)?;
    declared.keys.extend(recipe.keys);
    declared.values.extend(recipe.values);
    declared.structs.extend(recipe.structs);
    // The reader must have understood the file, or an empty list would pass.
    for expected in [
        "Profile",
        "Capabilities",
        "UserDriver",
        "FormRule",
        "Resource",
        "Recipe",
    ] {
        check(declared.structs.contains(expected), || {
            format!(
                "profile_docs: no Deserialize struct `{expected}` read from harness/src/profile.rs (found {:?})",
                declared.structs
            )
        })?;
    }
    let documented = documented_keys(&doc);
    let undocumented: Vec<String> = declared
        .keys
        .iter()
        .filter(|(_, key)| !documented.contains(key))
        .map(|(owner, key)| format!("`{key}` (a field of `{owner}`)"))
        .collect();
    // The operations table's rows name operations, not keys.
    let real: BTreeSet<&str> = declared
        .keys
        .iter()
        .map(|(_, k)| k.as_str())
        .chain(Operation::ALL.iter().map(|op| op.name()))
        .collect();
    let stale: Vec<String> = documented
        .iter()
        .filter(|key| !real.contains(key.as_str()))
        .map(|key| format!("`{key}`"))
        .collect();
    let unnamed_values: Vec<String> = declared
        .values
        .iter()
        .filter(|(_, value)| !doc.contains(&format!("`{value}`")))
        .map(|(owner, value)| format!("`{value}` (a value of `{owner}`)"))
        .collect();
    let mut problems = Vec::new();
    if !undocumented.is_empty() {
        problems.push(format!(
            "profile keys with no row (| `key` | …) in docs/profile.md:\n  {}",
            undocumented.join("\n  ")
        ));
    }
    if !stale.is_empty() {
        problems.push(format!(
            "rows in docs/profile.md for keys the profile type does not have:\n  {}",
            stale.join("\n  ")
        ));
    }
    if !unnamed_values.is_empty() {
        problems.push(format!(
            "enum values never named in docs/profile.md:\n  {}",
            unnamed_values.join("\n  ")
        ));
    }
    check(problems.is_empty(), || problems.join("\n"))
}

/// Tables whose keys are names the profile's author chooses.
fn user_named(path: &[String]) -> bool {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    // Anything inside a recipe's templates and pointers.
    if let ["operations", _, "headers" | "query" | "body" | "read" | "each", ..] = path.as_slice() {
        return true;
    }
    matches!(
        path.as_slice(),
        ["resources"] | ["clients"] | ["users"] | ["authorization", "clients"] | ["secrets"]
    ) || matches!(
        path.last(),
        Some(&("fill" | "extra_params" | "extra_metadata"))
    )
}

/// Every key used at or below `table`, with its dotted path.
fn keys_used(table: &toml::Table, path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
    let chosen = user_named(path);
    for (key, value) in table {
        if !chosen {
            let mut full = path.clone();
            full.push(key.clone());
            out.push((key.clone(), full.join(".")));
        }
        path.push(key.clone());
        match value {
            toml::Value::Table(inner) => keys_used(inner, path, out),
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        keys_used(inner, path, out);
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

fn reference_profile_keys_documented() -> Result<(), Failed> {
    let reference = read("fixtures/profiles/reference.toml")?;
    let doc = read("docs/profile.md")?;
    let table: toml::Table = reference
        .parse()
        .map_err(|e| Failed::from(format!("fixtures/profiles/reference.toml: {e}")))?;
    let mut used = Vec::new();
    keys_used(&table, &mut Vec::new(), &mut used);
    check(used.len() > 20, || {
        format!(
            "profile_docs: only {} keys read from reference.toml",
            used.len()
        )
    })?;
    let documented = documented_keys(&doc);
    let undocumented: Vec<String> = used
        .iter()
        .filter(|(key, _)| !documented.contains(key))
        .map(|(key, path)| format!("`{key}` (at {path})"))
        .collect();
    check(undocumented.is_empty(), || {
        format!(
            "keys of fixtures/profiles/reference.toml with no row (| `key` | …) in docs/profile.md:\n  {}",
            undocumented.join("\n  ")
        )
    })
}

/// The operations table (under `### Operations`): a row per operation the
/// harness knows, naming each input and output in backticks.
fn every_operation_documented() -> Result<(), Failed> {
    let doc = read("docs/profile.md")?;
    let section = doc
        .split("### Operations")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .ok_or("docs/profile.md has no \"### Operations\" section")?;
    let rows: Vec<(&str, &str)> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .collect();
    let mut problems = Vec::new();
    for op in Operation::ALL {
        let spec = op.spec();
        let Some((_, row)) = rows.iter().find(|(name, _)| *name == spec.name) else {
            problems.push(format!("no row for `{}`", spec.name));
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (inputs, outputs) = (cells.get(1).copied(), cells.get(2).copied());
        for (cell, names) in [
            (inputs, spec.inputs.to_vec()),
            (
                outputs,
                spec.needs
                    .iter()
                    .chain(spec.may_read)
                    .chain(spec.each)
                    .copied()
                    .collect(),
            ),
        ] {
            for name in names {
                if !cell.unwrap_or_default().contains(&format!("`{name}`")) {
                    problems.push(format!("the row of `{}` does not name `{name}`", spec.name));
                }
            }
        }
    }
    for (name, _) in &rows {
        if Operation::by_name(name).is_none() {
            problems.push(format!("a row for `{name}`, which is no operation"));
        }
    }
    check(problems.is_empty(), || {
        format!(
            "docs/profile.md, ### Operations:\n  {}",
            problems.join("\n  ")
        )
    })
}
