//! Request bodies as Graph reads them: the declared properties of a structured type, beside
//! OData instance annotations.
//!
//! Graph's bodies are OData JSON: a name starting with `@` is an annotation of the object
//! (`"@odata.type": "#microsoft.graph.user"`, which Microsoft's SDKs send on every `POST`
//! and `PATCH`), and `property@term` annotates one property (`"passwordProfile@odata.type"`);
//! neither is a property (OData JSON Format 4.0, "Instance Annotations" and
//! "Control Information": <https://docs.oasis-open.org/odata/odata-json-format/v4.0/odata-json-format-v4.0.html>).
//! An `@odata.type` must name the expected type or one derived from it, as Graph's OData
//! reader requires; otherwise Graph answers 400 "A resource with type '…' was found, but it
//! is not assignable to the expected type '…'". Directory objects are named by the directory
//! service's own type names there (`Microsoft.DirectoryServices.User`), as Graph's answers
//! for directory writes show.
//!
//! `property@odata.bind` is not an annotation but a change of a navigation property; no body
//! the emulator serves accepts one, so it is refused rather than silently ignored.

use serde_json::{Map, Value};

use super::errors::Fail;

/// A structured type the emulator reads from request bodies.
#[derive(Debug)]
pub struct BodyType {
    /// Its name in namespace `microsoft.graph`, e.g. `user`.
    pub name: &'static str,
    /// Types of Graph v1.0 deriving from it (an `@odata.type` may name them).
    pub derived: &'static [&'static str],
    /// Every declared property a body of this type may carry, with its CSDL type
    /// (`Edm.String`, `Collection(Edm.String)`, `graph.passwordProfile`).
    pub properties: &'static [(&'static str, &'static str)],
    /// A directory object: errors name it the directory service's way.
    pub directory: bool,
}

/// `PATCH /users/{id}`: the properties the emulator models (the rest of the CSDL's user
/// properties are answered as unknown by `routes::users`).
pub const USER: BodyType = BodyType {
    name: "user",
    derived: &["agentUser"],
    properties: &[
        ("passwordProfile", "graph.passwordProfile"),
        ("accountEnabled", "Edm.Boolean"),
        ("mobilePhone", "Edm.String"),
        ("businessPhones", "Collection(Edm.String)"),
        ("department", "Edm.String"),
        ("jobTitle", "Edm.String"),
        ("displayName", "Edm.String"),
        ("givenName", "Edm.String"),
        ("surname", "Edm.String"),
        ("officeLocation", "Edm.String"),
        ("usageLocation", "Edm.String"),
    ],
    directory: true,
};

/// The `passwordProfile` complex value of a user.
pub const PASSWORD_PROFILE: BodyType = BodyType {
    name: "passwordProfile",
    derived: &[],
    properties: &[
        ("forceChangePasswordNextSignIn", "Edm.Boolean"),
        ("forceChangePasswordNextSignInWithMfa", "Edm.Boolean"),
        ("password", "Edm.String"),
    ],
    directory: true,
};

/// `POST /users/{id}/authentication/temporaryAccessPassMethods`: every declared property of
/// the entity may appear; the create reads the three settable ones (see `routes::methods`).
pub const TEMPORARY_ACCESS_PASS: BodyType = BodyType {
    name: "temporaryAccessPassAuthenticationMethod",
    derived: &[],
    properties: &[
        ("id", "Edm.String"),
        ("createdDateTime", "Edm.DateTimeOffset"),
        ("isUsable", "Edm.Boolean"),
        ("isUsableOnce", "Edm.Boolean"),
        ("lifetimeInMinutes", "Edm.Int32"),
        ("methodUsabilityReason", "Edm.String"),
        ("startDateTime", "Edm.DateTimeOffset"),
        ("temporaryAccessPass", "Edm.String"),
    ],
    directory: false,
};

/// Every body type, for the contract tests that compare them with the CSDL.
pub const BODY_TYPES: &[&BodyType] = &[&USER, &PASSWORD_PROFILE, &TEMPORARY_ACCESS_PASS];

impl BodyType {
    /// How Graph's errors name `type_name` (a `microsoft.graph` name) for this body.
    fn wire_name(&self, type_name: &str) -> String {
        if self.directory {
            let mut chars = type_name.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            format!(
                "Microsoft.DirectoryServices.{}{}",
                first.map(String::from).unwrap_or_default(),
                chars.as_str()
            )
        } else {
            format!("microsoft.graph.{type_name}")
        }
    }

    fn code(&self) -> &'static str {
        if self.directory {
            "Request_BadRequest"
        } else {
            "BadRequest"
        }
    }

    fn not_assignable(&self, named: &str, expected: &str) -> Fail {
        let found = named.trim_start_matches('#');
        let found = match found.strip_prefix("microsoft.graph.") {
            Some(short) => self.wire_name(short),
            None => found.to_string(),
        };
        Fail::new(
            400,
            self.code(),
            format!(
                "A resource with type '{found}' was found, but it is not assignable to the expected type '{}'. The type specified in the resource must be equal to either the expected type or a derived type.",
                self.wire_name(expected)
            ),
        )
    }

    /// The type named by an `@odata.type` value, if it is this type or a derived one.
    /// `#microsoft.graph.user` is the form Graph writes and the SDKs send; OData also
    /// allows the name without `#`.
    fn accepts(&self, named: &str) -> bool {
        let name = named.trim_start_matches('#');
        name.strip_prefix("microsoft.graph.")
            .is_some_and(|short| short == self.name || self.derived.contains(&short))
    }

    /// The CSDL type of a declared property.
    pub fn property_type(&self, name: &str) -> Option<&'static str> {
        self.properties
            .iter()
            .find(|(p, _)| *p == name)
            .map(|(_, t)| *t)
    }

    /// Whether an `@odata.type` value names the declared type `csdl_type` of a property
    /// (`#microsoft.graph.passwordProfile`; `#String` or `#Edm.String`; `#Collection(String)`).
    fn names_property_type(named: &str, csdl_type: &str) -> bool {
        let named = named.trim_start_matches('#').replace("Edm.", "");
        let declared = csdl_type
            .replace("graph.", "microsoft.graph.")
            .replace("Edm.", "");
        named == declared
    }

    /// The declared properties of `object` read as this type, after checking its
    /// annotations. A name that is neither a declared property nor an annotation is
    /// answered by `unknown`.
    pub fn read<'a>(
        &self,
        object: &'a Map<String, Value>,
        unknown: impl Fn(&str) -> Fail,
    ) -> Result<Vec<(&'a str, &'a Value)>, Fail> {
        let mut properties = Vec::with_capacity(object.len());
        for (key, value) in object {
            if key == "@odata.type" {
                let named = value.as_str().ok_or_else(Fail::bad_json)?;
                if !self.accepts(named) {
                    return Err(self.not_assignable(named, self.name));
                }
                continue;
            }
            if key.starts_with('@') {
                // Other annotations of the object (`@odata.context`, `@odata.id`, custom
                // terms) carry nothing a write uses.
                continue;
            }
            if let Some((property, term)) = key.split_once('@') {
                let Some(declared) = self.property_type(property) else {
                    return Err(unknown(key));
                };
                match term {
                    "odata.bind" => return Err(unknown(key)),
                    "odata.type" => {
                        let named = value.as_str().ok_or_else(Fail::bad_json)?;
                        if !Self::names_property_type(named, declared) {
                            let expected = declared
                                .trim_start_matches("graph.")
                                .trim_start_matches("Edm.");
                            return Err(self.not_assignable(named, expected));
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if self.property_type(key).is_none() {
                return Err(unknown(key));
            }
            properties.push((key.as_str(), value));
        }
        Ok(properties)
    }

    /// OData's answer for a property a closed type does not declare.
    pub fn undeclared(&self, name: &str) -> Fail {
        Fail::new(
            400,
            self.code(),
            format!(
                "The property '{name}' does not exist on type '{}'. Make sure to only use property names that are defined by the type or mark the type as open type.",
                self.wire_name(self.name)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(ty: &BodyType, body: Value) -> Result<Vec<String>, Fail> {
        let Value::Object(map) = body else { panic!() };
        ty.read(&map, |name| ty.undeclared(name))
            .map(|props| props.into_iter().map(|(k, _)| k.to_string()).collect())
    }

    #[test]
    fn annotations_are_not_properties() {
        let props = read(
            &USER,
            json!({
                "@odata.type": "#microsoft.graph.user",
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                "passwordProfile@odata.type": "#microsoft.graph.passwordProfile",
                "businessPhones@odata.type": "#Collection(String)",
                "accountEnabled@odata.type": "#Edm.Boolean",
                "department@contoso.note": "a custom property annotation",
                "passwordProfile": {},
                "accountEnabled": true,
            }),
        )
        .unwrap();
        assert_eq!(props, ["accountEnabled", "passwordProfile"]);
        // A derived type and the form without '#'.
        assert!(read(&USER, json!({"@odata.type": "#microsoft.graph.agentUser"})).is_ok());
        assert!(read(&USER, json!({"@odata.type": "microsoft.graph.user"})).is_ok());
    }

    #[test]
    fn a_type_that_is_not_assignable_is_refused_as_graph_words_it() {
        let err = read(&USER, json!({"@odata.type": "#microsoft.graph.group"})).unwrap_err();
        assert_eq!((err.status, err.code), (400, "Request_BadRequest"));
        assert_eq!(
            err.message,
            "A resource with type 'Microsoft.DirectoryServices.Group' was found, but it is not assignable to the expected type 'Microsoft.DirectoryServices.User'. The type specified in the resource must be equal to either the expected type or a derived type."
        );
        let err = read(
            &TEMPORARY_ACCESS_PASS,
            json!({"@odata.type": "#microsoft.graph.phoneAuthenticationMethod"}),
        )
        .unwrap_err();
        assert_eq!(err.code, "BadRequest");
        assert!(
            err.message
                .contains("'microsoft.graph.temporaryAccessPassAuthenticationMethod'"),
            "{}",
            err.message
        );
        let err = read(
            &USER,
            json!({"passwordProfile@odata.type": "#microsoft.graph.user"}),
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("'Microsoft.DirectoryServices.PasswordProfile'")
        );
        assert!(read(&USER, json!({"@odata.type": 7})).is_err());
    }

    #[test]
    fn unknown_properties_binds_and_annotations_of_unknown_properties_are_refused() {
        for body in [
            json!({"shoeSize": 42}),
            json!({"shoeSize@odata.type": "#Int32"}),
            json!({"manager@odata.bind": "https://graph.microsoft.com/v1.0/users/x"}),
            json!({"department@odata.bind": "x"}),
        ] {
            let err = read(&PASSWORD_PROFILE, body.clone()).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
        }
        let err = read(&TEMPORARY_ACCESS_PASS, json!({"shoeSize": 1})).unwrap_err();
        assert_eq!(
            err.message,
            "The property 'shoeSize' does not exist on type 'microsoft.graph.temporaryAccessPassAuthenticationMethod'. Make sure to only use property names that are defined by the type or mark the type as open type."
        );
    }
}
