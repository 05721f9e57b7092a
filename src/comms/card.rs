//! Adaptive Card checks: a card resetctl sends must validate against the official 1.5 schema
//! (vendored in `schema/`, embedded), after removing the Teams-only `msteams` key the strict
//! schema does not know. Used by `resetctl validate` on every card template and by the
//! emulated tenant's Teams sink on every card it receives.

use std::sync::OnceLock;

use serde_json::Value;

/// The official Adaptive Card 1.5 schema (draft-06), from `microsoft/AdaptiveCards`
/// `schemas/1.5.0/adaptive-card.json`, MIT licence.
const SCHEMA_1_5: &str = include_str!("schema/adaptive-card-1.5.schema.json");

/// The compiled schema, built once per process (it is immutable data, not state).
fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA_1_5).expect("the vendored schema is JSON");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft6)
            .build(&schema)
            .expect("the vendored schema compiles")
    })
}

/// Why a card does not validate: one line per schema violation, each naming the JSON
/// pointer of the offending node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Adaptive Card does not validate against the 1.5 schema: {}", .problems.join("; "))]
pub struct InvalidCard {
    /// `"/body/0/type: ..."` per violation (at most 10).
    pub problems: Vec<String>,
}

/// Check `card` against the Adaptive Card 1.5 schema, after dropping its top-level `msteams`
/// key (Teams' host extension: mentions, width). A card must also say `"type":
/// "AdaptiveCard"` and a `version`, which the schema's description requires of a top-level card
/// but its `required` list does not.
pub fn validate(card: &Value) -> Result<(), InvalidCard> {
    let mut copy = card.clone();
    if let Some(object) = copy.as_object_mut() {
        object.remove("msteams");
    }
    let mut problems: Vec<String> = validator()
        .iter_errors(&copy)
        .take(10)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if copy.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
        problems.push("/type: a card must be of type \"AdaptiveCard\"".into());
    }
    if copy.get("version").and_then(Value::as_str).is_none() {
        problems.push("/version: a top-level card must name its version".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InvalidCard { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_plain_card_with_a_teams_mention_validates() {
        let card = json!({
            "type": "AdaptiveCard", "version": "1.5",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "body": [{"type": "TextBlock", "text": "Hello <at>Alice</at>", "wrap": true}],
            "actions": [{"type": "Action.OpenUrl", "title": "Reset", "url": "https://aka.ms/sspr"}],
            "msteams": {"entities": [{"type": "mention", "text": "<at>Alice</at>",
                "mentioned": {"id": "alice@contoso.com", "name": "Alice"}}]}
        });
        assert_eq!(validate(&card), Ok(()));
    }

    #[test]
    fn unknown_properties_and_missing_urls_are_named() {
        let card = json!({
            "type": "AdaptiveCard", "version": "1.5",
            "body": [{"type": "TextBlock", "text": "x", "colour": "red"}],
            "actions": [{"type": "Action.OpenUrl", "title": "Go"}]
        });
        let err = validate(&card).unwrap_err();
        assert!(!err.problems.is_empty(), "{err}");
        let no_version = json!({"type": "AdaptiveCard", "body": []});
        let err = validate(&no_version).unwrap_err();
        assert!(err.to_string().contains("/version"), "{err}");
    }
}
