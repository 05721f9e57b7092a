//! The Graph v1.0 metadata (CSDL) for the contract tests: a line parser, a checker of JSON
//! values against entity types, and the extraction that keeps the vendored subset small.
//!
//! The subset lives in `tests/fixtures/graph-csdl/` with its licence. It holds the types of
//! [`ROOTS`], every type derived from one of [`DERIVED_OF`], their base types and every
//! complex and enum type their structural properties use, each block copied verbatim from
//! Microsoft's `v1.0` metadata. To refresh it from a newer metadata file:
//!
//! ```sh
//! curl -sLo /tmp/v1.0.csdl https://raw.githubusercontent.com/microsoftgraph/msgraph-metadata/master/schemas/v1.0-Prod.csdl
//! RESETCTL_FULL_CSDL=/tmp/v1.0.csdl cargo test --test integration csdl::regenerate -- --ignored
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde_json::Value;

/// The vendored subset, relative to the crate root.
pub const SUBSET: &str = "tests/fixtures/graph-csdl/graph-v1.0.subset.csdl.xml";

/// The types the contract tests check: everything the emulator returns or reads, and the
/// types derived from them that its answers name.
pub const ROOTS: &[&str] = &[
    "directoryObject",
    "user",
    "group",
    "passwordProfile",
    "authenticationMethod",
    "passwordAuthenticationMethod",
    "microsoftAuthenticatorAuthenticationMethod",
    "phoneAuthenticationMethod",
    "fido2AuthenticationMethod",
    "softwareOathAuthenticationMethod",
    "emailAuthenticationMethod",
    "windowsHelloForBusinessAuthenticationMethod",
    "temporaryAccessPassAuthenticationMethod",
    "unifiedRoleAssignment",
    "servicePrincipal",
    "unifiedRoleEligibilityScheduleInstance",
    "riskyUser",
];

/// The types request bodies are read as: all their derived types are kept too, so the test
/// comparing the emulator's accepted `@odata.type`s with the metadata sees every one.
pub const DERIVED_OF: &[&str] = &[
    "user",
    "passwordProfile",
    "temporaryAccessPassAuthenticationMethod",
];

/// A property or navigation property of a type.
pub struct Prop {
    /// Its CSDL type, e.g. `Edm.String`, `graph.passwordProfile`, `Collection(Edm.String)`.
    pub ty: String,
    /// Whether null is allowed.
    pub nullable: bool,
    /// A navigation property (followed only when the emulator returns it).
    pub navigation: bool,
}

/// Entity, complex and enum types of namespace `microsoft.graph`.
#[derive(Default)]
pub struct Csdl {
    /// name → (base type, properties).
    types: HashMap<String, (Option<String>, HashMap<String, Prop>)>,
    /// Enum name → members.
    enums: HashMap<String, Vec<String>>,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = line.find(&key)? + key.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// The vendored subset, parsed.
pub fn load() -> Csdl {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(SUBSET);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let csdl = Csdl::parse(&text);
    for root in ROOTS {
        assert!(
            csdl.types.contains_key(*root),
            "no microsoft.graph.{root} in {}: regenerate it (see tests/csdl.rs)",
            path.display()
        );
    }
    csdl
}

impl Csdl {
    /// Parse the `microsoft.graph` schema of a CSDL document (one element per line, as
    /// Microsoft's metadata is laid out).
    pub fn parse(text: &str) -> Csdl {
        let mut csdl = Csdl::default();
        let mut in_graph = false;
        let mut current: Option<String> = None;
        let mut current_enum: Option<String> = None;
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with("<Schema ") {
                in_graph = attr(l, "Namespace") == Some("microsoft.graph");
                continue;
            }
            if !in_graph {
                continue;
            }
            if l.starts_with("<EntityType ") || l.starts_with("<ComplexType ") {
                let name = attr(l, "Name").unwrap().to_string();
                let base = attr(l, "BaseType").map(|b| b.trim_start_matches("graph.").to_string());
                csdl.types.insert(name.clone(), (base, HashMap::new()));
                current = if l.ends_with("/>") { None } else { Some(name) };
            } else if l.starts_with("</EntityType>") || l.starts_with("</ComplexType>") {
                current = None;
            } else if l.starts_with("<EnumType ") {
                let name = attr(l, "Name").unwrap().to_string();
                csdl.enums.insert(name.clone(), Vec::new());
                current_enum = Some(name);
            } else if l.starts_with("</EnumType>") {
                current_enum = None;
            } else if l.starts_with("<Member ")
                && let Some(e) = &current_enum
            {
                csdl.enums
                    .get_mut(e)
                    .unwrap()
                    .push(attr(l, "Name").unwrap().to_string());
            } else if (l.starts_with("<Property ") || l.starts_with("<NavigationProperty "))
                && let Some(t) = &current
            {
                let prop = Prop {
                    ty: attr(l, "Type").unwrap().to_string(),
                    nullable: attr(l, "Nullable") != Some("false"),
                    navigation: l.starts_with("<NavigationProperty "),
                };
                csdl.types
                    .get_mut(t)
                    .unwrap()
                    .1
                    .insert(attr(l, "Name").unwrap().to_string(), prop);
            }
        }
        csdl
    }

    /// Property `prop` of type `ty` or of one of its base types.
    pub fn find(&self, ty: &str, prop: &str) -> Option<&Prop> {
        let mut t = Some(ty.to_string());
        while let Some(name) = t {
            let (base, props) = self.types.get(&name)?;
            if let Some(p) = props.get(prop) {
                return Some(p);
            }
            t = base.clone();
        }
        None
    }

    /// Whether `ty` is `ancestor` or derives from it.
    pub fn derives_from(&self, ty: &str, ancestor: &str) -> bool {
        let mut t = Some(ty.to_string());
        while let Some(name) = t {
            if name == ancestor {
                return true;
            }
            t = self.types.get(&name).and_then(|(b, _)| b.clone());
        }
        false
    }

    /// The types of the document that derive (directly or not) from `ty`, sorted.
    pub fn derived_types(&self, ty: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .types
            .keys()
            .filter(|name| name.as_str() != ty && self.derives_from(name, ty))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Check one JSON object against type `ty`; pushes the problems, returns how many
    /// properties were checked. Instance annotations (`@odata.type` on the object,
    /// `property@odata.type` on a property) are OData control information, not properties:
    /// the object's `@odata.type` must name `ty` or a type derived from it, and a property's
    /// `@odata.type` must name the property's declared type.
    pub fn check(&self, ty: &str, obj: &Value, at: &str, problems: &mut Vec<String>) -> usize {
        let mut checked = 0;
        let Some(map) = obj.as_object() else {
            problems.push(format!("{at}: not an object"));
            return 0;
        };
        let ty = match map.get("@odata.type").and_then(Value::as_str) {
            Some(t) => {
                let actual = t.trim_start_matches("#microsoft.graph.");
                if self.derives_from(actual, ty) {
                    actual.to_string()
                } else {
                    problems.push(format!("{at}: @odata.type {t} does not derive from {ty}"));
                    ty.to_string()
                }
            }
            None => ty.to_string(),
        };
        for (key, value) in map {
            if key.starts_with('@') {
                continue;
            }
            if let Some((prop, term)) = key.split_once('@') {
                match self.find(&ty, prop) {
                    None => problems.push(format!(
                        "{at}: annotation '{key}' names no property of microsoft.graph.{ty}"
                    )),
                    Some(p) if term == "odata.type" => {
                        // `#microsoft.graph.passwordProfile`, `#String` or `#Edm.String`,
                        // `#Collection(String)`.
                        let declared =
                            p.ty.replace("graph.", "microsoft.graph.")
                                .replace("Edm.", "");
                        let named = value.as_str().unwrap_or_default().trim_start_matches('#');
                        if named.replace("Edm.", "") != declared {
                            problems.push(format!(
                                "{at}.{key}: {value} is not the declared type {}",
                                p.ty
                            ));
                        }
                    }
                    Some(_) => {}
                }
                continue;
            }
            let Some(prop) = self.find(&ty, key) else {
                problems.push(format!(
                    "{at}: property '{key}' does not exist on microsoft.graph.{ty}"
                ));
                continue;
            };
            checked += 1;
            let where_ = format!("{at}.{key}");
            if prop.navigation {
                let target = prop.ty.trim_start_matches("graph.");
                checked += self.check(target, value, &where_, problems);
            } else {
                self.check_value(&prop.ty, prop.nullable, value, &where_, problems);
            }
        }
        checked
    }

    fn check_value(
        &self,
        ty: &str,
        nullable: bool,
        v: &Value,
        at: &str,
        problems: &mut Vec<String>,
    ) {
        if v.is_null() {
            if !nullable {
                problems.push(format!("{at}: null for a non-nullable {ty}"));
            }
            return;
        }
        if let Some(inner) = ty
            .strip_prefix("Collection(")
            .and_then(|t| t.strip_suffix(')'))
        {
            match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_value(inner, false, item, &format!("{at}[{i}]"), problems);
                    }
                }
                None => problems.push(format!("{at}: {ty} expects an array, got {v}")),
            }
            return;
        }
        let ok = match ty {
            "Edm.String" => v.is_string(),
            "Edm.Guid" => v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()),
            "Edm.Boolean" => v.is_boolean(),
            "Edm.Int32" | "Edm.Int64" | "Edm.Int16" | "Edm.Byte" => v.is_i64() || v.is_u64(),
            "Edm.Double" | "Edm.Single" | "Edm.Decimal" => v.is_number(),
            "Edm.DateTimeOffset" => v
                .as_str()
                .is_some_and(|s| s.parse::<jiff::Timestamp>().is_ok()),
            "Edm.Binary" => v.is_string(),
            other => {
                let name = other.trim_start_matches("graph.");
                if let Some(members) = self.enums.get(name) {
                    let ok = v.as_str().is_some_and(|s| members.iter().any(|m| m == s));
                    if !ok {
                        problems.push(format!("{at}: {v} is not a member of enum {name}"));
                    }
                    true
                } else if self.types.contains_key(name) {
                    if v.is_object() {
                        self.check(name, v, at, problems);
                        true
                    } else {
                        false
                    }
                } else {
                    problems.push(format!("{at}: unknown CSDL type {other}"));
                    true
                }
            }
        };
        if !ok {
            problems.push(format!("{at}: {v} is not a {ty}"));
        }
    }
}

/// The name of the `microsoft.graph` type a CSDL type reference uses, if it is one
/// (`graph.passwordProfile`, `Collection(graph.assignedPlan)`); `Edm.*` and other
/// namespaces are `None`.
fn graph_type(reference: &str) -> Option<&str> {
    let inner = reference
        .strip_prefix("Collection(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(reference);
    inner.strip_prefix("graph.")
}

/// One type's block of lines in the `microsoft.graph` schema.
struct Block<'a> {
    name: &'a str,
    base: Option<&'a str>,
    /// Types its structural properties use (navigation targets are not followed).
    uses: Vec<&'a str>,
    lines: Vec<&'a str>,
}

/// The blocks of the `microsoft.graph` schema, in document order, and the schema's opening
/// line.
fn blocks(full: &str) -> (String, Vec<Block<'_>>) {
    let mut schema_line = None;
    let mut in_graph = false;
    let mut out: Vec<Block<'_>> = Vec::new();
    let mut open: Option<Block<'_>> = None;
    for line in full.lines() {
        let l = line.trim();
        if l.starts_with("<Schema ") {
            in_graph = attr(l, "Namespace") == Some("microsoft.graph");
            if in_graph {
                schema_line = Some(line.to_string());
            }
            continue;
        }
        if !in_graph {
            continue;
        }
        if let Some(block) = open.as_mut() {
            block.lines.push(line);
            if l.starts_with("<Property ")
                && let Some(used) = attr(l, "Type").and_then(graph_type)
            {
                block.uses.push(used);
            }
            if l.starts_with("</EntityType>")
                || l.starts_with("</ComplexType>")
                || l.starts_with("</EnumType>")
            {
                out.extend(open.take());
            }
            continue;
        }
        if l.starts_with("<EntityType ")
            || l.starts_with("<ComplexType ")
            || l.starts_with("<EnumType ")
        {
            let block = Block {
                name: attr(l, "Name").unwrap(),
                base: attr(l, "BaseType").and_then(graph_type),
                uses: Vec::new(),
                lines: vec![line],
            };
            if l.ends_with("/>") {
                out.push(block);
            } else {
                open = Some(block);
            }
        }
    }
    let schema_line = schema_line.expect("the document has a microsoft.graph schema");
    (schema_line, out)
}

/// The subset of `full` that holds `roots`, the types derived from `derived_of`, their base
/// types and every type their structural properties use, transitively; blocks are copied
/// verbatim, in document order.
pub fn extract(full: &str, roots: &[&str], derived_of: &[&str]) -> String {
    let (schema_line, blocks) = blocks(full);
    let by_name: HashMap<&str, &Block<'_>> = blocks.iter().map(|b| (b.name, b)).collect();
    let derives = |block: &Block<'_>| {
        let mut base = block.base;
        while let Some(name) = base {
            if derived_of.contains(&name) {
                return true;
            }
            base = by_name.get(name).and_then(|b| b.base);
        }
        false
    };
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    let mut todo: Vec<&str> = roots.to_vec();
    todo.extend(derived_of);
    todo.extend(blocks.iter().filter(|b| derives(b)).map(|b| b.name));
    while let Some(name) = todo.pop() {
        let Some(block) = by_name.get(name) else {
            panic!("microsoft.graph.{name} is not in the metadata");
        };
        if !keep.insert(block.name) {
            continue;
        }
        todo.extend(block.base);
        todo.extend(
            block
                .uses
                .iter()
                .copied()
                .filter(|u| by_name.contains_key(u)),
        );
    }
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <!-- A subset of the Microsoft Graph v1.0 metadata (microsoftgraph/msgraph-metadata,\n     \
         schemas/v1.0-Prod.csdl, MIT licence: see LICENSE beside this file). Generated by\n     \
         tests/csdl.rs (`csdl::regenerate`); do not edit by hand. -->\n\
         <edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n  \
         <edmx:DataServices>\n",
    );
    out.push_str(&schema_line);
    out.push('\n');
    for block in blocks.iter().filter(|b| keep.contains(b.name)) {
        for line in &block.lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n");
    out
}

/// Rewrite the vendored subset from the full metadata named by `RESETCTL_FULL_CSDL`.
#[test]
#[ignore = "maintenance: needs the full Graph metadata (see the module docs)"]
fn regenerate() {
    let full_path = std::env::var("RESETCTL_FULL_CSDL")
        .expect("RESETCTL_FULL_CSDL names the full v1.0 metadata file");
    let full = std::fs::read_to_string(&full_path).unwrap();
    let subset = extract(&full, ROOTS, DERIVED_OF);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(SUBSET);
    std::fs::write(&out, &subset).unwrap();
    eprintln!("wrote {} ({} bytes)", out.display(), subset.len());
}

#[test]
fn extraction_keeps_roots_bases_and_used_types_only() {
    let full = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="microsoft.graph" Alias="graph" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EnumType Name="colour">
        <Member Name="red" Value="0" />
      </EnumType>
      <EnumType Name="unused">
        <Member Name="x" Value="0" />
      </EnumType>
      <ComplexType Name="profile">
        <Property Name="tint" Type="graph.colour" />
      </ComplexType>
      <EntityType Name="entity" Abstract="true">
        <Key><PropertyRef Name="id" /></Key>
        <Property Name="id" Type="Edm.String" Nullable="false" />
      </EntityType>
      <EntityType Name="thing" BaseType="graph.entity">
        <Property Name="profiles" Type="Collection(graph.profile)" />
        <NavigationProperty Name="owner" Type="graph.other" />
      </EntityType>
      <EntityType Name="other" BaseType="graph.entity" />
      <EntityType Name="special" BaseType="graph.thing" />
      <EntityType Name="unrelated" BaseType="graph.entity" />
    </Schema>
    <Schema Namespace="microsoft.graph.elsewhere" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="thing" />
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"#;
    let subset = extract(full, &["profile"], &["thing"]);
    let csdl = Csdl::parse(&subset);
    let mut kept: Vec<&String> = csdl.types.keys().chain(csdl.enums.keys()).collect();
    kept.sort();
    assert_eq!(
        kept,
        ["colour", "entity", "profile", "special", "thing"],
        "{subset}"
    );
    assert_eq!(csdl.derived_types("thing"), ["special"]);
    assert!(
        csdl.find("thing", "id").is_some(),
        "the base type's properties"
    );
    assert!(csdl.find("thing", "owner").is_some_and(|p| p.navigation));
    assert!(
        subset.contains("<Key><PropertyRef Name=\"id\" /></Key>"),
        "verbatim"
    );
    assert!(subset.trim_end().ends_with("</edmx:Edmx>"));
}

#[test]
fn the_checker_catches_wrong_names_and_types() {
    let csdl = load();
    let mut problems = Vec::new();
    csdl.check(
        "user",
        &serde_json::json!({"id": "x", "accountEnabled": "yes", "shoeSize": 42, "businessPhones": null}),
        "u",
        &mut problems,
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
    problems.clear();
    csdl.check(
        "riskyUser",
        &serde_json::json!({"riskLevel": "extreme"}),
        "r",
        &mut problems,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    problems.clear();
    csdl.check(
        "authenticationMethod",
        &serde_json::json!({"@odata.type": "#microsoft.graph.user", "id": "x"}),
        "m",
        &mut problems,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    problems.clear();
    csdl.check(
        "user",
        &serde_json::json!({
            "@odata.type": "#microsoft.graph.user",
            "passwordProfile@odata.type": "#microsoft.graph.group",
            "shoeSize@odata.type": "#Int32",
            "passwordProfile": {"@odata.type": "#microsoft.graph.user", "password": "x"},
        }),
        "annotated",
        &mut problems,
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
}
