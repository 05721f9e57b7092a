//! Integration tests of the emulated tenant over real HTTP on 127.0.0.1.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use resetctl::emulator::{ConnectionInfo, EmulatorConfig, RunningEmulator};
use serde_json::{Value, json};

use crate::util::{fixture, http, start_emulator, start_tenant, token, write_tenant_file};

/// Raw Graph requests to the emulator as one of its apps.
struct Api {
    client: reqwest::Client,
    info: ConnectionInfo,
    graph: String,
    token: String,
}

impl Api {
    async fn new(info: &ConnectionInfo, app: usize) -> Api {
        let client = http();
        let token = token(&client, info, app).await;
        Api {
            client,
            info: info.clone(),
            graph: info.graph_url.clone(),
            token,
        }
    }
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.graph, path)
        }
    }
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
    async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path).await;
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut b = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            b = b.json(&body);
        }
        b.send().await.unwrap()
    }
    /// [`Api::send`], asserting the status; the response is returned for further checks.
    async fn send_expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> reqwest::Response {
        let r = self.send(method.clone(), path, body).await;
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        r
    }
    /// `GET /_emulator/{what}` (no token needed) as JSON.
    async fn inspect(&self, what: &str) -> Value {
        crate::util::inspect(&self.info, what).await
    }
}

const SMALL_TENANT: &str = r#"
verified_domain: contoso.example
apps:
  - display_name: runner
    client_secret: "runner-secret-1"
  - display_name: second-runner
    client_secret: "runner-secret-2"
  - display_name: privileged-runner
    client_secret: "runner-secret-3"
    role: Privileged Authentication Administrator
users:
  - upn: ceo@contoso.example
    display_name: Dana Chief
    department: Executive
  - upn: alice@contoso.example
    display_name: Alice Jones
    given_name: Alice
    surname: Jones
    department: Finance
    mobile_phone: "+1 425 555 0101"
    manager: ceo@contoso.example
    methods: [authenticator, phone, fido2, softwareOath, email, windowsHello]
    risk: { level: high }
  - upn: bob@contoso.example
    display_name: Bob Synced
    department: Finance
    manager: ceo@contoso.example
    synced: true
    risk: { level: medium }
  - upn: ga@contoso.example
    display_name: Gail Admin
    manager: ceo@contoso.example
    roles: [Global Administrator]
    eligible_roles: [Privileged Role Administrator]
    methods: [fido2]
  - upn: tier0@contoso.example
    display_name: Tim Tier0
    manager: ceo@contoso.example
  - upn: helpdesk@contoso.example
    display_name: Hal Helpdesk
    manager: ceo@contoso.example
    roles: [Helpdesk Administrator]
    risk: { level: low }
groups:
  - display_name: Tier0 Admins
    role_assignable: true
    members: [tier0@contoso.example]
    roles: [Privileged Role Administrator]
  - display_name: Finance
    members: [alice@contoso.example, bob@contoso.example]
  - display_name: Everyone
    members: [ceo@contoso.example]
    member_groups: [Finance]
  - display_name: CA Exclusion
"#;

async fn small_tenant() -> (tempfile::TempDir, RunningEmulator) {
    start_tenant(SMALL_TENANT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_10000_users_returns_each_exactly_once() {
    let emu = start_emulator(EmulatorConfig::seeded(10_000, 42)).await;
    let api = Api::new(emu.info(), 0).await;
    let mut seen = HashSet::new();
    let mut pages = 0;
    let mut next = Some("/users?$select=id,userPrincipalName&$top=999".to_string());
    while let Some(url) = next {
        let r = api.get(&url).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("request-id"));
        let body: Value = r.json().await.unwrap();
        assert!(
            body["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with("$metadata#users(id,userPrincipalName)")
        );
        for u in body["value"].as_array().unwrap() {
            assert!(
                seen.insert(u["id"].as_str().unwrap().to_string()),
                "duplicate {u}"
            );
        }
        pages += 1;
        next = body["@odata.nextLink"].as_str().map(|s| {
            assert!(s.starts_with(&emu.info().graph_url), "{s}");
            assert!(s.contains("$skiptoken="), "{s}");
            s.to_string()
        });
    }
    assert_eq!(seen.len(), 10_001, "10,000 and the shared mailbox");
    assert_eq!(pages, 11);

    // Default page size is 100; $count needs ConsistencyLevel: eventual, else it is ignored.
    let (_, body) = api.get_json("/users?$count=true").await;
    assert_eq!(body["value"].as_array().unwrap().len(), 100);
    assert!(body.get("@odata.count").is_none());
    let r = api
        .client
        .get(api.url("/users?$count=true&$top=5"))
        .bearer_auth(&api.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["@odata.count"], 10_001);
    let r = api
        .client
        .get(api.url("/users/$count"))
        .bearer_auth(&api.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.text().await.unwrap(), "10001");
    let (status, body) = api.get_json("/users/$count").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "$count is not currently supported."
    );

    // A filter pages too, and every result matches.
    let mut next = Some("/users?$filter=department%20eq%20'Finance'%20and%20accountEnabled%20eq%20true&$select=department,accountEnabled&$top=50".to_string());
    let mut finance = 0;
    while let Some(url) = next {
        let (_, body) = api.get_json(&url).await;
        for u in body["value"].as_array().unwrap() {
            assert_eq!(u["department"], "Finance");
            assert_eq!(u["accountEnabled"], true);
            finance += 1;
        }
        next = body["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert!(finance > 300, "{finance}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_returns_only_the_selected_properties() {
    let emu = start_emulator(EmulatorConfig::seeded(100, 3)).await;
    let api = Api::new(emu.info(), 0).await;
    let (_, body) = api.get_json("/users?$select=id,displayName,lastPasswordChangeDateTime,signInSessionsValidFromDateTime&$top=10").await;
    for u in body["value"].as_array().unwrap() {
        let mut keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "displayName",
                "id",
                "lastPasswordChangeDateTime",
                "signInSessionsValidFromDateTime"
            ]
        );
    }
    // The default set when nothing is selected.
    let (_, body) = api.get_json("/users?$top=1").await;
    let mut keys: Vec<String> = body["value"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "businessPhones",
            "displayName",
            "givenName",
            "id",
            "jobTitle",
            "mail",
            "mobilePhone",
            "officeLocation",
            "preferredLanguage",
            "surname",
            "userPrincipalName"
        ]
    );
    // Single user by UPN with $select.
    let upn = body["value"][0]["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let (status, one) = api
        .get_json(&format!(
            "/users/{upn}?$select=accountEnabled,onPremisesSyncEnabled"
        ))
        .await;
    assert_eq!(status, 200);
    let keys: HashSet<&str> = one
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["@odata.context", "accountEnabled", "onPremisesSyncEnabled"])
    );
    // $expand=manager with its own $select, on a page and on a single user.
    let (_, page) = api
        .get_json("/users?$select=id&$expand=manager&$top=5")
        .await;
    let with_manager = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["manager"].is_object())
        .count();
    assert_eq!(
        with_manager, 4,
        "every user but the first (the CEO) has a manager"
    );
    let second = page["value"][1]["id"].as_str().unwrap();
    let (status, one) = api
        .get_json(&format!(
            "/users/{second}?$select=id&$expand=manager($select=id,mobilePhone)"
        ))
        .await;
    assert_eq!(status, 200);
    let keys: HashSet<&str> = one["manager"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, HashSet::from(["@odata.type", "id", "mobilePhone"]));
    let (status, _) = api.get_json("/users?$expand=memberOf").await;
    assert_eq!(status, 400);
    let (status, _) = api.get_json("/users?$orderby=displayName").await;
    assert_eq!(status, 400, "not silently ignored");
    let (status, err) = api.get_json("/users?$select=id,shoeSize").await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shoeSize")
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_cases_answer_like_graph() {
    let (_dir, emu) = small_tenant().await;
    let info = emu.info().clone();
    let api = Api::new(&info, 0).await;
    let c = &api.client;

    // 401 without / with a bad token, Graph error body and request-id.
    let r = c.get(api.url("/users")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let rid = r.headers()["request-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(body["error"]["innerError"]["request-id"], rid);
    assert!(body["error"]["innerError"]["date"].is_string());
    let r = c
        .get(api.url("/users"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // $top out of range: Graph's exact message.
    let (status, body) = api.get_json("/users?$top=1000").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    );
    // Unknown user, unknown segment, no manager.
    let (status, body) = api.get_json("/users/nobody@contoso.example").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    let (status, body) = api.get_json("/frobnicators").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "BadRequest");
    let (status, body) = api.get_json("/users/ceo@contoso.example/manager").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Resource 'manager' does not exist")
    );
    let (status, body) = api
        .get_json("/users/alice@contoso.example/manager?$select=id,userPrincipalName")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["userPrincipalName"], "ceo@contoso.example");
    assert_eq!(body["@odata.type"], "#microsoft.graph.user");
    // ne without the advanced-query header.
    let (status, body) = api
        .get_json("/users?$filter=accountEnabled%20ne%20true")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "Request_UnsupportedQuery");

    let patch = |pw: &str| json!({"passwordProfile": {"forceChangePasswordNextSignIn": true, "password": pw}});
    let good = "Xy7#kLm2pQ9!";
    // Bad JSON.
    let r = c
        .patch(api.url("/users/alice@contoso.example"))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Synced user.
    let r = api
        .send_expect(
            Method::PATCH,
            "/users/bob@contoso.example",
            Some(patch(good)),
            400,
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."
    );
    // Complexity.
    let r = api
        .send_expect(
            Method::PATCH,
            "/users/alice@contoso.example",
            Some(patch("password")),
            400,
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("complexity")
    );
    // User Administrator may not reset a Global Admin, a role-assignable group member, or revoke them.
    for target in ["ga@contoso.example", "tier0@contoso.example"] {
        let r = api
            .send_expect(
                Method::PATCH,
                &format!("/users/{target}"),
                Some(patch(good)),
                403,
            )
            .await;
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
        assert_eq!(
            body["error"]["message"],
            "Insufficient privileges to complete the operation."
        );
        api.send_expect(
            Method::POST,
            &format!("/users/{target}/revokeSignInSessions"),
            None,
            403,
        )
        .await;
    }
    // ... but a Helpdesk Administrator, yes; and the Privileged Authentication Administrator app reaches the GA.
    api.send_expect(
        Method::PATCH,
        "/users/helpdesk@contoso.example",
        Some(patch(good)),
        204,
    )
    .await;
    let pa = Api::new(&info, 2).await;
    pa.send_expect(
        Method::PATCH,
        "/users/ga@contoso.example",
        Some(patch(good)),
        204,
    )
    .await;

    // A successful reset is readable back.
    let before = chrono_like_now();
    let r = api.send_expect(Method::PATCH, "/users/alice@contoso.example", Some(json!({"passwordProfile": {"forceChangePasswordNextSignIn": true, "forceChangePasswordNextSignInWithMfa": true, "password": good}})), 204).await;
    assert!(r.headers().contains_key("request-id"));
    assert_eq!(r.headers()["x-ms-resource-unit"], "1");
    let r = api
        .send_expect(
            Method::POST,
            "/users/alice@contoso.example/revokeSignInSessions",
            None,
            200,
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["value"], true);
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Edm.Boolean")
    );
    let (_, alice) = api.get_json("/users/alice@contoso.example?$select=id,lastPasswordChangeDateTime,signInSessionsValidFromDateTime").await;
    assert!(
        alice["lastPasswordChangeDateTime"].as_str().unwrap() >= before.as_str(),
        "{alice}"
    );
    assert!(alice["signInSessionsValidFromDateTime"].as_str().unwrap() >= before.as_str());
    let inspect: Value = api.inspect("users/alice@contoso.example").await;
    assert_eq!(inspect["forceChangePasswordNextSignIn"], true);
    assert_eq!(inspect["forceChangePasswordNextSignInWithMfa"], true);
    assert_eq!(inspect["passwordSetCount"], 1);
    // The admin reset remediated Alice's risk.
    assert_eq!(inspect["risk"]["state"], "remediated");

    // The write log lists every write attempt in order with outcome.
    let log: Value = api.inspect("writes").await;
    let writes = log["writes"].as_array().unwrap();
    let statuses: Vec<u64> = writes
        .iter()
        .map(|w| w["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [400, 400, 400, 403, 403, 403, 403, 204, 204, 204, 200]
    );
    assert_eq!(writes[7]["client_id"], info.apps[0].client_id);
    assert_eq!(writes[8]["client_id"], info.apps[2].client_id);
    assert_eq!(writes[10]["applied"], true);
    assert_eq!(writes[3]["applied"], false);
    emu.shutdown().await;
}

fn chrono_like_now() -> String {
    // Graph's DateTimeOffset has whole seconds; compare against the current second.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    jiff::Timestamp::from_second(now)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_secret_basic_and_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = fixture("emulator/app-cert.pem");
    let yaml = format!(
        "users:\n  - upn: a@contoso.example\napps:\n  - client_secret: s3cret-value\n    certificate_file: {}\n",
        cert.display()
    );
    let path = write_tenant_file(dir.path(), &yaml);
    let emu = start_emulator(EmulatorConfig::from_tenant_file(&path).unwrap()).await;
    let info = emu.info().clone();
    let c = http();
    let app = &info.apps[0];
    let form = |extra: &[(&str, &str)]| {
        let mut v = vec![
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        v.extend_from_slice(extra);
        v.into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    // Wrong secret: Entra's body.
    let r = c
        .post(&info.token_url)
        .form(&form(&[
            ("client_id", &app.client_id),
            ("client_secret", "wrong"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215:")
    );
    assert!(
        body["trace_id"].is_string()
            && body["correlation_id"].is_string()
            && body["timestamp"].is_string()
    );
    assert!(!body.to_string().contains("s3cret-value"));
    // Unknown client, bad scope, wrong tenant.
    let r = c
        .post(&info.token_url)
        .form(&form(&[
            ("client_id", "00000000-0000-0000-0000-000000000001"),
            ("client_secret", "x"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 700016);
    let r = c
        .post(&info.token_url)
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", "s3cret-value"),
            ("scope", "User.Read"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");
    let wrong_tenant = info
        .token_url
        .replace(&info.tenant_id, "11111111-2222-3333-4444-555555555555");
    let r = c
        .post(&wrong_tenant)
        .form(&form(&[
            ("client_id", &app.client_id),
            ("client_secret", "s3cret-value"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 90002);
    // HTTP Basic.
    let r = c
        .post(&info.token_url)
        .basic_auth(&app.client_id, Some("s3cret-value"))
        .form(&form(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 3599);

    // Certificate assertion, PS256 with x5t#S256 and RS256 with x5t; the token works on Graph.
    let der = cert_der(&cert);
    for (alg, thumb_header) in [("PS256", "x5t#S256"), ("RS256", "x5t")] {
        let jwt = assertion(alg, thumb_header, &der, &app.client_id, &info.token_url, 0);
        let r = c
            .post(&info.token_url)
            .form(&form(&[
                ("client_id", &app.client_id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &jwt),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{alg}");
        let token = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let g = c
            .get(format!("{}/users", info.graph_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(g.status(), 200);
    }
    // A tampered signature, an expired assertion, a wrong audience.
    let mut jwt = assertion(
        "PS256",
        "x5t#S256",
        &der,
        &app.client_id,
        &info.token_url,
        0,
    );
    jwt.replace_range(jwt.len() - 6.., "AAAAAA");
    let r = c
        .post(&info.token_url)
        .form(&form(&[
            ("client_id", &app.client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &jwt),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 700027);
    let jwt = assertion(
        "PS256",
        "x5t#S256",
        &der,
        &app.client_id,
        &info.token_url,
        -3600,
    );
    let r = c
        .post(&info.token_url)
        .form(&form(&[
            ("client_id", &app.client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &jwt),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 700024);
    let jwt = assertion(
        "PS256",
        "x5t#S256",
        &der,
        &app.client_id,
        "https://elsewhere.example/token",
        0,
    );
    let r = c
        .post(&info.token_url)
        .form(&form(&[
            ("client_id", &app.client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &jwt),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    emu.shutdown().await;
}

fn cert_der(path: &PathBuf) -> Vec<u8> {
    let pem = std::fs::read_to_string(path).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// A client assertion signed with the fixture key (test-only key, never used elsewhere).
fn assertion(
    alg: &str,
    thumb_header: &str,
    der: &[u8],
    client_id: &str,
    aud: &str,
    shift: i64,
) -> String {
    use sha2::Digest;
    let thumb = if thumb_header == "x5t#S256" {
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
    } else {
        URL_SAFE_NO_PAD
            .encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
    };
    let header = json!({"alg": alg, "typ": "JWT", thumb_header: thumb});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + shift;
    let claims = json!({"aud": aud, "iss": client_id, "sub": client_id, "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "iat": now, "exp": now + 600});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = ring::signature::RsaKeyPair::from_pkcs8(
        &std::fs::read(fixture("emulator/app-key.pk8")).unwrap(),
    )
    .unwrap();
    let mut sig = vec![0u8; key.public().modulus_len()];
    let padding: &'static dyn ring::signature::RsaEncoding = if alg == "PS256" {
        &ring::signature::RSA_PSS_SHA256
    } else {
        &ring::signature::RSA_PKCS1_SHA256
    };
    key.sign(
        padding,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_roles_risk_methods_tap_and_mail() {
    let (_dir, emu) = small_tenant().await;
    let info = emu.info().clone();
    let api = Api::new(&info, 0).await;
    let (_, groups) = api
        .get_json("/groups?$filter=displayName%20eq%20'Everyone'")
        .await;
    let everyone = groups["value"][0]["id"].as_str().unwrap().to_string();
    let (_, groups) = api
        .get_json("/groups?$filter=displayName%20eq%20'CA%20Exclusion'")
        .await;
    let ca = groups["value"][0]["id"].as_str().unwrap().to_string();
    // members: direct user + nested group; transitiveMembers: users through the nesting.
    let r = api.get(&format!("/groups/{everyone}/members")).await;
    assert_eq!(r.headers()["x-ms-resource-unit"], "3");
    let body: Value = r.json().await.unwrap();
    let types: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["#microsoft.graph.user", "#microsoft.graph.group"]);
    let r = api
        .get(&format!(
            "/groups/{everyone}/transitiveMembers?$select=userPrincipalName"
        ))
        .await;
    assert_eq!(r.headers()["x-ms-resource-unit"], "4", "5 - 1 for $select");
    let body: Value = r.json().await.unwrap();
    let upns: HashSet<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["userPrincipalName"].as_str())
        .collect();
    assert_eq!(
        upns,
        HashSet::from([
            "ceo@contoso.example",
            "alice@contoso.example",
            "bob@contoso.example"
        ])
    );
    // Membership writes.
    let (_, alice) = api.get_json("/users/alice@contoso.example").await;
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let add = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{alice_id}")});
    api.send_expect(
        Method::POST,
        &format!("/groups/{ca}/members/$ref"),
        Some(add.clone()),
        204,
    )
    .await;
    api.send_expect(
        Method::POST,
        &format!("/groups/{ca}/members/$ref"),
        Some(add),
        400,
    )
    .await;
    api.send_expect(
        Method::DELETE,
        &format!("/groups/{ca}/members/{alice_id}/$ref"),
        None,
        204,
    )
    .await;
    api.send_expect(
        Method::DELETE,
        &format!("/groups/{ca}/members/{alice_id}/$ref"),
        None,
        404,
    )
    .await;

    let log: Value = api.inspect("writes").await;
    let targets: Vec<&Value> = log["writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["target"])
        .collect();
    assert_eq!(targets.len(), 4);
    assert!(
        targets.iter().all(|t| **t == json!(alice_id)),
        "{targets:?}"
    );

    // Roles: filter by role, expand principal; eligibilities.
    let (status, body) = api.get_json("/roleManagement/directory/roleAssignments?$filter=roleDefinitionId%20eq%20'62e90394-69f5-4237-9190-012177145e10'&$expand=principal").await;
    assert_eq!(status, 200);
    let v = body["value"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["principal"]["userPrincipalName"], "ga@contoso.example");
    assert_eq!(v[0]["directoryScopeId"], "/");
    let (_, body) = api
        .get_json("/roleManagement/directory/roleAssignments")
        .await;
    assert!(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["principal"].is_null()
                && a["roleDefinitionId"] == "e8611ab8-c189-46e8-94e1-60213ab1f814")
    );
    let (_, body) = api
        .get_json("/roleManagement/directory/roleEligibilityScheduleInstances")
        .await;
    assert_eq!(
        body["value"][0]["roleDefinitionId"],
        "e8611ab8-c189-46e8-94e1-60213ab1f814"
    );

    // Risky users, 1 request/s per tenant: space the calls.
    let (status, body) = api
        .get_json("/identityProtection/riskyUsers?$filter=riskLevel%20eq%20'high'")
        .await;
    assert_eq!(status, 200);
    let v = body["value"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["userPrincipalName"], "alice@contoso.example");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    api.send_expect(
        Method::POST,
        "/identityProtection/riskyUsers/confirmCompromised",
        Some(json!({"userIds": [alice_id]})),
        204,
    )
    .await;
    let inspect: Value = api.inspect(&format!("users/{alice_id}")).await;
    assert_eq!(inspect["risk"]["state"], "confirmedCompromised");

    // Methods: list, delete one, TAP (201, one usable per user).
    let (status, body) = api
        .get_json(&format!("/users/{alice_id}/authentication/methods"))
        .await;
    assert_eq!(status, 200);
    let methods = body["value"].as_array().unwrap();
    assert_eq!(methods.len(), 7, "password + six");
    let phone = methods
        .iter()
        .find(|m| m["@odata.type"] == "#microsoft.graph.phoneAuthenticationMethod")
        .unwrap();
    assert_eq!(phone["id"], "3179e48a-750b-4051-897c-87b9720928f7");
    assert_eq!(phone["phoneNumber"], "+1 425 555 0101");
    let oath = methods
        .iter()
        .find(|m| m["@odata.type"] == "#microsoft.graph.softwareOathAuthenticationMethod")
        .unwrap();
    api.send_expect(
        Method::DELETE,
        &format!(
            "/users/{alice_id}/authentication/softwareOathMethods/{}",
            oath["id"].as_str().unwrap()
        ),
        None,
        204,
    )
    .await;
    api.send_expect(
        Method::DELETE,
        &format!(
            "/users/{alice_id}/authentication/phoneMethods/3179e48a-750b-4051-897c-87b9720928f7"
        ),
        None,
        204,
    )
    .await;
    api.send_expect(
        Method::DELETE,
        &format!(
            "/users/{alice_id}/authentication/phoneMethods/3179e48a-750b-4051-897c-87b9720928f7"
        ),
        None,
        404,
    )
    .await;
    // A lifetime below 10 minutes is refused.
    api.send_expect(
        Method::POST,
        &format!("/users/{alice_id}/authentication/temporaryAccessPassMethods"),
        Some(json!({"lifetimeInMinutes": 5})),
        400,
    )
    .await;
    let r = api
        .send_expect(
            Method::POST,
            &format!("/users/{alice_id}/authentication/temporaryAccessPassMethods"),
            Some(json!({"lifetimeInMinutes": 60, "isUsableOnce": true})),
            201,
        )
        .await;
    let tap1: Value = r.json().await.unwrap();
    assert_eq!(
        tap1["@odata.type"],
        "#microsoft.graph.temporaryAccessPassAuthenticationMethod"
    );
    assert_eq!(tap1["isUsable"], true);
    assert_eq!(tap1["temporaryAccessPass"].as_str().unwrap().len(), 8);
    let r = api
        .send(
            Method::POST,
            &format!("/users/{alice_id}/authentication/temporaryAccessPassMethods"),
            Some(json!({})),
        )
        .await;
    let tap2: Value = r.json().await.unwrap();
    let (_, body) = api
        .get_json(&format!("/users/{alice_id}/authentication/methods"))
        .await;
    let taps: Vec<&Value> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["@odata.type"] == "#microsoft.graph.temporaryAccessPassAuthenticationMethod")
        .collect();
    assert_eq!(taps.len(), 1);
    assert_eq!(taps[0]["id"], tap2["id"]);
    assert!(
        taps[0]["temporaryAccessPass"].is_null(),
        "the pass is shown only once"
    );
    let inspect: Value = api.inspect(&format!("users/{alice_id}")).await;
    assert_eq!(
        inspect["temporaryAccessPass"]["temporaryAccessPass"],
        tap2["temporaryAccessPass"]
    );
    assert!(
        !inspect["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "phone" || m == "softwareOath")
    );
    // TAP for a Global Admin with the User Administrator app: refused.
    api.send_expect(
        Method::POST,
        "/users/ga@contoso.example/authentication/temporaryAccessPassMethods",
        Some(json!({})),
        403,
    )
    .await;

    // sendMail: 202 and the outbox.
    let mail = json!({"message": {"subject": "Action required", "body": {"contentType": "Text", "content": "Your password was reset."}, "toRecipients": [{"emailAddress": {"address": "alice@contoso.example"}}]}, "saveToSentItems": false});
    let r = api
        .send_expect(
            Method::POST,
            "/users/ceo@contoso.example/sendMail",
            Some(mail),
            202,
        )
        .await;
    assert!(
        !r.headers().contains_key("x-ms-resource-unit"),
        "Outlook, not the directory"
    );
    api.send_expect(
        Method::POST,
        "/users/ceo@contoso.example/sendMail",
        Some(json!({"message": {"subject": "x"}})),
        400,
    )
    .await;
    let outbox: Value = api.inspect("outbox").await;
    let msgs = outbox["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["from"], "ceo@contoso.example");
    assert_eq!(msgs[0]["to"][0], "alice@contoso.example");
    assert_eq!(msgs[0]["subject"], "Action required");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_protection_throttles_without_retry_after() {
    let (_dir, emu) = small_tenant().await;
    let info = emu.info().clone();
    let a = Api::new(&info, 0).await;
    let b = Api::new(&info, 1).await;
    let r = a.get("/identityProtection/riskyUsers").await;
    assert_eq!(r.status(), 200);
    // A second request within the second, from another app: the tenant-wide limit.
    let r = b.get("/identityProtection/riskyUsers").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(b.get("/identityProtection/riskyUsers").await.status(), 200);
    emu.shutdown().await;
}

/// A large seeded tenant (so the resource-unit bucket, 8,000 per 10 s, stays out of the way)
/// at time scale 5: 3,000 writes per 30 s, refilled at 100 writes/s. Returns the emulator
/// and a write that app 0 and 1 may make: revoking the CEO's sessions (the CEO, user 0,
/// never holds a seeded role).
async fn scaled_tenant() -> (RunningEmulator, String) {
    let mut config = EmulatorConfig::seeded(600, 11);
    config.apps = 2;
    config.time_scale = 5.0;
    let emu = start_emulator(config).await;
    let api = Api::new(emu.info(), 0).await;
    let (_, body) = api.get_json("/users?$top=1&$select=id").await;
    let target = format!(
        "/users/{}/revokeSignInSessions",
        body["value"][0]["id"].as_str().unwrap()
    );
    (emu, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_quota_throttles_a_client_that_ignores_retry_after() {
    let (emu, target) = scaled_tenant().await;
    let target = Arc::new(target);
    let info = emu.info().clone();
    let api = Arc::new(Api::new(&info, 0).await);
    let ok_before_first_429 = Arc::new(AtomicU64::new(0));
    let throttled = Arc::new(AtomicU64::new(0));
    let seen_429 = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let first_retry_after = Arc::new(std::sync::Mutex::new(None::<(f64, String, String)>));
    let max_retry_after = Arc::new(std::sync::Mutex::new(0f64));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (api, okb, thr, seen, first, max, sent, target) = (
            api.clone(),
            ok_before_first_429.clone(),
            throttled.clone(),
            seen_429.clone(),
            first_retry_after.clone(),
            max_retry_after.clone(),
            sent.clone(),
            target.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Send until 300 throttled answers were seen (or a hard cap), never waiting.
            while thr.load(Ordering::Relaxed) < 300 && sent.fetch_add(1, Ordering::Relaxed) < 12_000
            {
                let r = api.send(Method::POST, &target, None).await;
                match r.status().as_u16() {
                    200 => {
                        if !seen.load(Ordering::Relaxed) {
                            okb.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    429 => {
                        seen.store(true, Ordering::Relaxed);
                        thr.fetch_add(1, Ordering::Relaxed);
                        let h = r.headers();
                        let ra: f64 = h["retry-after"].to_str().unwrap().parse().unwrap();
                        // The write quota trips first; a client this fast may later also
                        // exhaust its resource units (throttled calls still cost them).
                        let scope = h["x-ms-throttle-scope"].to_str().unwrap().to_string();
                        assert!(scope.starts_with("Tenant_Application/"), "{scope}");
                        let info = h["x-ms-throttle-information"].to_str().unwrap().to_string();
                        assert!(
                            info == "WriteLimitExceeded" || info == "ResourceUnitLimitExceeded",
                            "{info}"
                        );
                        assert!(h.contains_key("x-ms-throttle-limit-percentage"));
                        let body: Value = r.json().await.unwrap();
                        assert_eq!(body["error"]["code"], "TooManyRequests");
                        first.lock().unwrap().get_or_insert((ra, scope, info));
                        let mut m = max.lock().unwrap();
                        *m = m.max(ra);
                    }
                    other => panic!("unexpected {other}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ok = ok_before_first_429.load(Ordering::Relaxed);
    assert!(
        ok >= 3000,
        "the first 3,000 writes of the window pass: {ok}"
    );
    assert!(throttled.load(Ordering::Relaxed) >= 300);
    let (first, first_scope, first_info) = first_retry_after.lock().unwrap().clone().unwrap();
    assert!(
        first_scope.starts_with("Tenant_Application/Write/"),
        "{first_scope}"
    );
    assert!(first_scope.ends_with(&format!("/{}/{}", info.client_id, info.tenant_id)));
    assert_eq!(first_info, "WriteLimitExceeded");
    let max = *max_retry_after.lock().unwrap();
    assert!(
        max > first * 5.0,
        "retrying early digs the hole deeper: first {first}, max {max}"
    );

    // Items of a $batch are throttled one by one: 429 per item with Retry-After in its headers.
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": *target},
        {"id": "2", "method": "GET", "url": "/users?$top=1&$select=id"},
    ]});
    let r = api
        .send_expect(Method::POST, "/$batch", Some(batch), 200)
        .await;
    let body: Value = r.json().await.unwrap();
    let items = body["responses"].as_array().unwrap();
    assert_eq!(items[0]["status"], 429);
    assert!(
        items[0]["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    assert_eq!(items[0]["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(
        items[1]["status"], 200,
        "reads pass while writes are throttled"
    );

    let stats: Value = api.inspect("stats").await;
    assert!(stats["throttled"].as_u64().unwrap() >= 301);
    assert_eq!(stats["time_scale"], 5.0);
    let bucket = stats["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bucket"] == "app0+tenant/writes")
        .unwrap()
        .clone();
    assert_eq!(bucket["window_seconds"], 30.0);
    assert!(bucket["throttled"].as_u64().unwrap() >= 301);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_honours_retry_after_is_never_throttled_on_retry() {
    let (emu, target) = scaled_tenant().await;
    let api = Api::new(emu.info(), 1).await;
    let mut throttled_first_tries = 0;
    let mut done = 0;
    let start = Instant::now();
    // Sequential writes until the quota has pushed back 15 times (it must: one request at a
    // time is far faster than 100 writes/s on loopback).
    while throttled_first_tries < 15 {
        assert!(
            done < 20_000 && start.elapsed() < Duration::from_secs(60),
            "never throttled"
        );
        let r = api.send(Method::POST, &target, None).await;
        if r.status() == 429 {
            throttled_first_tries += 1;
            let ra: f64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(ra < 1.0, "scaled Retry-After: {ra}");
            tokio::time::sleep(Duration::from_secs_f64(ra)).await;
            let retry = api.send(Method::POST, &target, None).await;
            assert_eq!(retry.status(), 200, "a retry after Retry-After is admitted");
        } else {
            assert_eq!(r.status(), 200);
        }
        done += 1;
    }
    assert!(done >= 3000, "{done}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_limits_dependencies_and_per_item_status() {
    let (_dir, emu) = small_tenant().await;
    let api = Api::new(emu.info(), 0).await;
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users?$top=1"}))
        .collect();
    api.send_expect(
        Method::POST,
        "/$batch",
        Some(json!({"requests": many})),
        400,
    )
    .await;
    // Duplicate ids are refused; ids are compared case-insensitively.
    api.send_expect(Method::POST, "/$batch", Some(json!({"requests": [
        {"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/users"}]})), 400).await;
    let pw = json!({"passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Xy7#kLm2pQ9!"}});
    let r = api.send_expect(Method::POST, "/$batch", Some(json!({"requests": [
        {"id": "1", "method": "PATCH", "url": "/users/nobody@contoso.example", "headers": {"Content-Type": "application/json"}, "body": pw},
        {"id": "2", "dependsOn": ["1"], "method": "POST", "url": "/users/nobody@contoso.example/revokeSignInSessions"},
        {"id": "3", "method": "PATCH", "url": "/users/alice@contoso.example", "headers": {"Content-Type": "application/json"}, "body": pw},
        {"id": "4", "dependsOn": ["3"], "method": "POST", "url": "/users/alice@contoso.example/revokeSignInSessions"},
        {"id": "5", "method": "GET", "url": "/identityProtection/riskyUsers"},
        {"id": "6", "method": "GET", "url": "/identityProtection/riskyUsers"},
        {"id": "7", "method": "GET", "url": "/users/$count", "headers": {"ConsistencyLevel": "eventual"}},
    ]})), 200).await;
    let body: Value = r.json().await.unwrap();
    let status: Vec<u64> = body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_u64().unwrap())
        .collect();
    assert_eq!(status, [404, 424, 204, 200, 200, 429, 200]);
    let items = body["responses"].as_array().unwrap();
    assert!(
        items[5]["headers"].get("Retry-After").is_none(),
        "Identity Protection sends none"
    );
    assert_eq!(items[6]["body"], "6");
    assert_eq!(items[0]["headers"]["x-ms-resource-unit"], "1");
    // The dependent write was never attempted; the others are logged as batch items.
    let log: Value = api.inspect("writes").await;
    let writes = log["writes"].as_array().unwrap();
    assert_eq!(writes.len(), 3);
    assert!(writes.iter().all(|w| w["batch"] == true));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_apply_writes_before_504_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tenant_file(dir.path(), SMALL_TENANT);
    let pw = json!({"passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Xy7#kLm2pQ9!"}});
    for (spec, expect) in [
        ("504=1.0", Some(504u16)),
        ("reset=1.0", None),
        ("503=1.0", Some(503)),
    ] {
        let config = EmulatorConfig::from_tenant_file(&path)
            .unwrap()
            .with_faults(spec)
            .unwrap();
        let emu = start_emulator(config).await;
        let api = Api::new(emu.info(), 0).await;
        let result = api
            .client
            .patch(api.url("/users/alice@contoso.example"))
            .bearer_auth(&api.token)
            .json(&pw)
            .send()
            .await;
        match expect {
            Some(code) => assert_eq!(result.unwrap().status(), code, "{spec}"),
            None => assert!(
                result.is_err(),
                "the connection is dropped without a response"
            ),
        }
        let inspect: Value = api.inspect("users/alice@contoso.example").await;
        let log: Value = api.inspect("writes").await;
        let w = &log["writes"][0];
        if spec.starts_with("503") {
            assert_eq!(
                inspect["passwordSetCount"], 0,
                "503 refuses before applying"
            );
            assert_eq!(w["applied"], false);
        } else {
            assert_eq!(
                inspect["passwordSetCount"], 1,
                "{spec}: applied before the fault"
            );
            assert_eq!(w["applied"], true);
        }
        emu.shutdown().await;
    }
}

/// `403=1.0`: every directory write is denied with Graph's body and changes nothing; reads,
/// the token endpoint, Outlook and Identity Protection are untouched; the write log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_403_denies_directory_writes_without_applying_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tenant_file(dir.path(), SMALL_TENANT);
    let config = EmulatorConfig::from_tenant_file(&path)
        .unwrap()
        .with_faults("403=1.0")
        .unwrap();
    let emu = start_emulator(config).await;
    let api = Api::new(emu.info(), 0).await; // the token endpoint is never denied
    let alice = "/users/alice@contoso.example";
    let before = api.inspect("users/alice@contoso.example").await;
    let pw = json!({"passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Xy7#kLm2pQ9!"}});

    let r = api
        .send_expect(Method::PATCH, alice, Some(pw.clone()), 403)
        .await;
    let rid = r.headers()["request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let date = body["error"]["innerError"]["date"].as_str().unwrap();
    assert!(
        date.parse::<jiff::civil::DateTime>().is_ok() && date.len() == 19,
        "{date}"
    );
    assert_eq!(
        body,
        json!({"error": {
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
            "innerError": {"date": date, "request-id": rid, "client-request-id": rid},
        }})
    );
    api.send_expect(
        Method::POST,
        &format!("{alice}/revokeSignInSessions"),
        None,
        403,
    )
    .await;
    api.send_expect(
        Method::DELETE,
        &format!("{alice}/authentication/phoneMethods/3179e48a-750b-4051-897c-87b9720928f7"),
        None,
        403,
    )
    .await;
    // Inside a $batch: the write item is denied, the read item served.
    let batch = json!({"requests": [
        {"id": "1", "method": "PATCH", "url": alice, "headers": {"Content-Type": "application/json"}, "body": pw},
        {"id": "2", "method": "GET", "url": format!("{alice}?$select=id")},
    ]});
    let r = api
        .send_expect(Method::POST, "/$batch", Some(batch), 200)
        .await;
    let items: Value = r.json().await.unwrap();
    assert_eq!(items["responses"][0]["status"], 403);
    assert_eq!(
        items["responses"][0]["body"]["error"]["code"],
        "Authorization_RequestDenied"
    );
    assert_eq!(items["responses"][1]["status"], 200);

    // Nothing was applied; reads still succeed.
    assert_eq!(api.inspect("users/alice@contoso.example").await, before);
    assert_eq!(before["passwordSetCount"], 0);
    let (status, methods) = api
        .get_json(&format!("{alice}/authentication/methods"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(methods["value"].as_array().unwrap().len(), 7);
    let (status, _) = api.get_json("/users?$select=id").await;
    assert_eq!(status, 200);

    // Outlook and Identity Protection writes are not directory writes: never denied.
    let mail = json!({"message": {"subject": "s", "body": {"contentType": "Text", "content": "c"}, "toRecipients": [{"emailAddress": {"address": "alice@contoso.example"}}]}});
    api.send_expect(
        Method::POST,
        "/users/ceo@contoso.example/sendMail",
        Some(mail),
        202,
    )
    .await;
    api.send_expect(
        Method::POST,
        "/identityProtection/riskyUsers/confirmCompromised",
        Some(json!({"userIds": [before["id"]]})),
        204,
    )
    .await;

    // The write log lists each denied write as attempted, not applied, with its fault.
    let log = api.inspect("writes").await;
    let rows: Vec<(&str, u64, bool, &Value)> = log["writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["method"].as_str().unwrap(),
                w["status"].as_u64().unwrap(),
                w["applied"].as_bool().unwrap(),
                &w["fault"],
            )
        })
        .collect();
    let denied = json!("403");
    assert_eq!(
        rows,
        [
            ("PATCH", 403, false, &denied),
            ("POST", 403, false, &denied),
            ("DELETE", 403, false, &denied),
            ("PATCH", 403, false, &denied),
            ("POST", 202, true, &Value::Null),
            ("POST", 204, true, &Value::Null),
        ]
    );
    assert_eq!(log["writes"][3]["batch"], true);
    assert_eq!(api.inspect("stats").await["faults"], 4);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_scale_shortens_token_lifetime_and_latency_applies() {
    let mut config = EmulatorConfig::seeded(20, 9);
    config.time_scale = 3599.0;
    config.latency_ms = 100;
    let emu = start_emulator(config).await;
    let info = emu.info().clone();
    let c = http();
    let app = &info.apps[0];
    let r: Value = c
        .post(&info.token_url)
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["expires_in"], 1);
    let token = r["access_token"].as_str().unwrap();
    assert_eq!(
        c.get(format!("{}/users", info.graph_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = c
        .get(format!("{}/users", info.graph_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Lifetime validation failed, the token is expired."
    );
    emu.shutdown().await;

    // Latency: mean 300 ms with ±50 % jitter, divided by the scale 2: 75 to 225 ms.
    let mut config = EmulatorConfig::seeded(20, 9);
    config.time_scale = 2.0;
    config.latency_ms = 300;
    let emu = start_emulator(config).await;
    let api = Api::new(emu.info(), 0).await;
    let t0 = Instant::now();
    assert_eq!(api.get("/users?$top=1").await.status(), 200);
    let elapsed = t0.elapsed();
    assert!(elapsed >= Duration::from_millis(75), "{elapsed:?}");
    emu.shutdown().await;
}

#[test]
fn resetctl_emulator_prints_connection_info_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(crate::util::bin())
        .args(["emulator", "--users", "50", "--seed", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    for key in [
        "graph_url",
        "token_url",
        "tenant_id",
        "client_id",
        "client_secret",
        "apps",
        "users",
    ] {
        assert!(info.get(key).is_some(), "{key} in {line}");
    }
    assert_eq!(info["users"], 51, "50 and the shared mailbox");
    assert!(info["graph_url"].as_str().unwrap().ends_with("/v1.0"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = http();
        let t: Value = c
            .post(info["token_url"].as_str().unwrap())
            .form(&[
                ("client_id", info["client_id"].as_str().unwrap()),
                ("client_secret", info["client_secret"].as_str().unwrap()),
                ("scope", "https://graph.microsoft.com/.default"),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = c
            .get(format!(
                "{}/users?$top=3",
                info["graph_url"].as_str().unwrap()
            ))
            .bearer_auth(t["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["value"].as_array().unwrap().len(), 3);
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no clean exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
}

/// A batch of `(id, method, url, body)` items as the SDKs send them (JSON bodies with their
/// Content-Type); the items' statuses in order.
async fn batch_statuses(api: &Api, items: &[(&str, &str, String, Option<Value>)]) -> Vec<u64> {
    let requests: Vec<Value> = items
        .iter()
        .map(|(id, method, url, body)| match body {
            Some(body) => json!({"id": id, "method": method, "url": url,
                "headers": {"Content-Type": "application/json"}, "body": body}),
            None => json!({"id": id, "method": method, "url": url}),
        })
        .collect();
    let r = api
        .send_expect(
            Method::POST,
            "/$batch",
            Some(json!({ "requests": requests })),
            200,
        )
        .await;
    let body: Value = r.json().await.unwrap();
    body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_u64().unwrap())
        .collect()
}

/// Microsoft's SDKs put `@odata.type` on every body and on nested complex values; Graph reads
/// annotations as control information, not properties. The emulator accepts them, checks
/// that an `@odata.type` names the expected type (or a derived one), and still refuses what
/// Graph refuses: unknown properties, binds it does not model, a type that does not fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_bodies_with_odata_annotations_are_accepted_as_graph_accepts_them() {
    let (_dir, emu) = small_tenant().await;
    let api = Api::new(emu.info(), 0).await;
    let alice = "/users/alice@contoso.example";
    let sdk_patch = json!({
        "@odata.type": "#microsoft.graph.user",
        "passwordProfile": {
            "@odata.type": "#microsoft.graph.passwordProfile",
            "forceChangePasswordNextSignIn": true,
            "password": "Xy7#kLm2pQ9!",
        },
        "passwordProfile@odata.type": "#microsoft.graph.passwordProfile",
        "department": "Treasury",
        "department@odata.type": "#String",
        "givenName": "Alicia",
    });
    api.send_expect(Method::PATCH, alice, Some(sdk_patch), 204)
        .await;
    let (_, user) = api
        .get_json(&format!("{alice}?$select=department,givenName"))
        .await;
    assert_eq!(
        (user["department"].as_str(), user["givenName"].as_str()),
        (Some("Treasury"), Some("Alicia"))
    );
    let state = api.inspect("users/alice@contoso.example").await;
    assert_eq!(state["passwordSetCount"], 1, "{state}");

    // A type that is not the user's: refused as Graph words it, and nothing is applied.
    let r = api
        .send_expect(
            Method::PATCH,
            alice,
            Some(json!({"@odata.type": "#microsoft.graph.group", "department": "Nowhere"})),
            400,
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Request_BadRequest");
    assert_eq!(
        body["error"]["message"],
        "A resource with type 'Microsoft.DirectoryServices.Group' was found, but it is not assignable to the expected type 'Microsoft.DirectoryServices.User'. The type specified in the resource must be equal to either the expected type or a derived type."
    );
    for refused in [
        json!({"passwordProfile": {"@odata.type": "#microsoft.graph.user", "password": "Xy7#kLm2pQ9!"}}),
        json!({"passwordProfile": {"passwordHint": "x", "password": "Xy7#kLm2pQ9!"}}),
        json!({"passwordProfile@odata.type": "#microsoft.graph.user", "department": "Nowhere"}),
        json!({"manager@odata.bind": "https://graph.microsoft.com/v1.0/users/ceo@contoso.example"}),
        json!({"shoeSize": 42}),
    ] {
        api.send_expect(Method::PATCH, alice, Some(refused), 400)
            .await;
    }
    let (_, user) = api.get_json(&format!("{alice}?$select=department")).await;
    assert_eq!(
        user["department"], "Treasury",
        "no refused body changed anything"
    );
    assert_eq!(
        api.inspect("users/alice@contoso.example").await["passwordSetCount"],
        1
    );

    // Temporary Access Pass bodies as the SDKs send them.
    let taps = format!("{alice}/authentication/temporaryAccessPassMethods");
    api.send_expect(
        Method::POST,
        &taps,
        Some(json!({"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod", "lifetimeInMinutes": 60, "isUsableOnce": true})),
        201,
    )
    .await;
    api.send_expect(
        Method::POST,
        &taps,
        Some(json!({"@odata.type": "#microsoft.graph.phoneAuthenticationMethod", "lifetimeInMinutes": 60})),
        400,
    )
    .await;
    let r = api
        .send_expect(
            Method::POST,
            &taps,
            Some(json!({"lifetimeInMinutez": 60})),
            400,
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The property 'lifetimeInMinutez' does not exist on type 'microsoft.graph.temporaryAccessPassAuthenticationMethod'."),
        "{body}"
    );

    // The same bodies inside a $batch.
    let statuses = batch_statuses(
        &api,
        &[
            (
                "1",
                "PATCH",
                alice.to_string(),
                Some(json!({"@odata.type": "#microsoft.graph.user", "jobTitle": "Controller", "jobTitle@odata.type": "#String"})),
            ),
            (
                "2",
                "PATCH",
                alice.to_string(),
                Some(json!({"@odata.type": "#microsoft.graph.group", "jobTitle": "Nobody"})),
            ),
            (
                "3",
                "POST",
                taps.clone(),
                Some(json!({"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod"})),
            ),
        ],
    )
    .await;
    assert_eq!(statuses, [204, 400, 201]);
    let (_, user) = api.get_json(&format!("{alice}?$select=jobTitle")).await;
    assert_eq!(user["jobTitle"], "Controller");
    emu.shutdown().await;
}

/// Direct members of group `id`.
async fn member_count(api: &Api, id: &str) -> usize {
    let (_, members) = api.get_json(&format!("/groups/{id}/members")).await;
    members["value"].as_array().unwrap().len()
}

/// The payload of a JWT (base64url JSON, the middle part).
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

const PERMISSIONS_TENANT: &str = r#"
verified_domain: contoso.example
apps:
  - display_name: runner
    client_secret: "runner-secret"
  - display_name: role-runner
    client_secret: "role-runner-secret"
    permissions: [GroupMember.ReadWrite.All, RoleManagement.ReadWrite.Directory]
  - display_name: reader
    client_secret: "reader-secret"
    permissions: [User.Read.All, GroupMember.Read.All]
users:
  - upn: alice@contoso.example
  - upn: bob@contoso.example
groups:
  - display_name: Tier0
    role_assignable: true
  - display_name: Responders
  - display_name: Everyone
"#;

/// Each app's granted application permissions are in its tokens' `roles` claim, as Entra
/// issues them, and a member write to a role-assignable group needs
/// `RoleManagement.ReadWrite.Directory` besides a group-member write permission, directly
/// and inside `$batch`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_assignable_membership_writes_need_role_management_permission() {
    let (_dir, emu) = start_tenant(PERMISSIONS_TENANT).await;
    let info = emu.info().clone();
    let runner = Api::new(&info, 0).await;
    let role_runner = Api::new(&info, 1).await;
    let reader = Api::new(&info, 2).await;

    let claims = jwt_claims(&runner.token);
    let defaults: Vec<&str> = resetctl::emulator::permissions::DEFAULT.to_vec();
    assert_eq!(
        claims["roles"],
        json!(defaults),
        "README's required set by default"
    );
    assert_eq!(claims["appid"], info.apps[0].client_id.as_str());
    assert_eq!(claims["tid"], info.tenant_id.as_str());
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["appidacr"], "1");
    assert_eq!(claims["aud"], "https://graph.microsoft.com");
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{}/", info.tenant_id)
    );
    assert_eq!(claims["wids"], json!([info.apps[0].role]));
    assert_eq!(claims["sub"], claims["oid"]);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((3599..=3600).contains(&lifetime), "{lifetime}");
    assert_eq!(
        jwt_claims(&role_runner.token)["roles"],
        json!([
            "GroupMember.ReadWrite.All",
            "RoleManagement.ReadWrite.Directory"
        ])
    );
    assert_eq!(
        info.apps[2].permissions,
        ["User.Read.All", "GroupMember.Read.All"]
    );

    let (_, groups) = runner.get_json("/groups?$select=id,displayName").await;
    let group = |name: &str| {
        groups["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["displayName"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (tier0, responders) = (group("Tier0"), group("Responders"));
    let (_, alice) = runner
        .get_json("/users/alice@contoso.example?$select=id")
        .await;
    let (_, bob) = runner
        .get_json("/users/bob@contoso.example?$select=id")
        .await;
    let reference = |user: &Value| json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", user["id"].as_str().unwrap())});
    let members_of = |g: &str| format!("/groups/{g}/members/$ref");

    // Without RoleManagement.ReadWrite.Directory: refused on the role-assignable group only.
    let r = runner
        .send_expect(
            Method::POST,
            &members_of(&tier0),
            Some(reference(&alice)),
            403,
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    runner
        .send_expect(
            Method::POST,
            &members_of(&responders),
            Some(reference(&alice)),
            204,
        )
        .await;
    let statuses = batch_statuses(
        &runner,
        &[("1", "POST", members_of(&tier0), Some(reference(&bob)))],
    )
    .await;
    assert_eq!(statuses, [403]);
    assert_eq!(member_count(&runner, &tier0).await, 0);
    // Without any group-member write permission: refused everywhere.
    reader
        .send_expect(
            Method::POST,
            &members_of(&responders),
            Some(reference(&bob)),
            403,
        )
        .await;

    // With it: accepted, directly and in a batch; removing needs it too.
    role_runner
        .send_expect(
            Method::POST,
            &members_of(&tier0),
            Some(reference(&alice)),
            204,
        )
        .await;
    let statuses = batch_statuses(
        &role_runner,
        &[("1", "POST", members_of(&tier0), Some(reference(&bob)))],
    )
    .await;
    assert_eq!(statuses, [204]);
    assert_eq!(member_count(&runner, &tier0).await, 2);
    let remove_alice = format!(
        "/groups/{tier0}/members/{}/$ref",
        alice["id"].as_str().unwrap()
    );
    runner
        .send_expect(Method::DELETE, &remove_alice, None, 403)
        .await;
    role_runner
        .send_expect(Method::DELETE, &remove_alice, None, 204)
        .await;
    assert_eq!(member_count(&runner, &tier0).await, 1);

    let log = runner.inspect("writes").await;
    let refused = log["writes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["status"] == 403)
        .inspect(|w| assert_eq!(w["applied"], false, "{w}"))
        .count();
    assert_eq!(refused, 4);
    emu.shutdown().await;
}

/// A security group can be a member of another group, as Graph documents, but not of a
/// role-assignable group; a nested group is removed like any member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_nest_except_in_role_assignable_groups() {
    let (_dir, emu) = start_tenant(PERMISSIONS_TENANT).await;
    let info = emu.info().clone();
    let runner = Api::new(&info, 0).await;
    let role_runner = Api::new(&info, 1).await;
    let (_, groups) = runner.get_json("/groups?$select=id,displayName").await;
    let id = |name: &str| {
        groups["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["displayName"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (tier0, responders, everyone) = (id("Tier0"), id("Responders"), id("Everyone"));
    let reference = |id: &str| json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
    let (_, alice) = runner
        .get_json("/users/alice@contoso.example?$select=id")
        .await;
    let alice = alice["id"].as_str().unwrap().to_string();
    runner
        .send_expect(
            Method::POST,
            &format!("/groups/{responders}/members/$ref"),
            Some(reference(&alice)),
            204,
        )
        .await;
    let nest = format!("/groups/{everyone}/members/$ref");
    runner
        .send_expect(Method::POST, &nest, Some(reference(&responders)), 204)
        .await;
    let (_, members) = runner
        .get_json(&format!("/groups/{everyone}/members"))
        .await;
    assert_eq!(
        members["value"][0]["@odata.type"], "#microsoft.graph.group",
        "{members}"
    );
    let (_, transitive) = runner
        .get_json(&format!("/groups/{everyone}/transitiveMembers"))
        .await;
    assert!(
        transitive["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == alice.as_str()),
        "{transitive}"
    );
    for refused in [
        (&runner, nest.clone(), reference(&responders)),
        (&runner, nest.clone(), reference(&everyone)),
        (
            &role_runner,
            format!("/groups/{tier0}/members/$ref"),
            reference(&responders),
        ),
    ] {
        refused
            .0
            .send_expect(Method::POST, &refused.1, Some(refused.2), 400)
            .await;
    }
    assert_eq!(member_count(&runner, &tier0).await, 0);
    let unnest = format!("/groups/{everyone}/members/{responders}/$ref");
    runner.send_expect(Method::DELETE, &unnest, None, 204).await;
    runner.send_expect(Method::DELETE, &unnest, None, 404).await;
    assert_eq!(member_count(&runner, &everyone).await, 0);
    emu.shutdown().await;
}

/// `resetctl emulator --write-config FILE` writes a tenant entry that `resetctl plan` loads
/// as it is (secrets from the environment variables it names), and the plan's estimate runs
/// at the scaled tenant's quotas: 2 apps at time scale 10 write 400/s, not Graph's 40/s.
#[test]
fn the_written_config_plans_against_the_emulator_at_its_time_scale() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("resetctl.yaml");
    let mut child = Command::new(crate::util::bin())
        .args(["emulator", "--users", "100", "--seed", "3", "--apps", "2"])
        .args([
            "--time-scale",
            "10",
            "--tenant-name",
            "lab",
            "--secret-env",
            "LAB_SECRET",
        ])
        .arg("--write-config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let secrets: Vec<&str> = info["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["client_secret"].as_str().unwrap())
        .collect();
    assert!(
        secrets.iter().all(|s| !text.contains(s)),
        "no secret in the file:\n{text}"
    );
    for expected in [
        "  lab:\n",
        "time_scale: 10\n",
        "tenant_size: medium\n",
        "client_secret_env: LAB_SECRET\n",
        "client_secret_env: LAB_SECRET_2\n",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    std::fs::write(
        dir.path().join("lab.yaml"),
        "name: lab\ntargets: [all_users: {}]\nguards: { max_fraction_of_tenant: 1.0 }\nsteps:\n  - revoke_sessions\n",
    )
    .unwrap();
    let out = Command::new(crate::util::bin())
        .arg("--config")
        .arg(&config)
        .args(["--output", "json", "plan", "lab.yaml", "--tenant", "lab"])
        .current_dir(dir.path())
        .env("LAB_SECRET", secrets[0])
        .env("LAB_SECRET_2", secrets[1])
        .env("RESETCTL_DATA_DIR", dir.path().join("data"))
        .env_remove("RESETCTL_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let stdout = crate::util::stdout(&out);
    assert_eq!(
        crate::util::code(&out),
        0,
        "{stdout}{}",
        crate::util::stderr(&out)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["tenant_users"], 101, "100 and the shared mailbox");
    let estimate = &summary["estimate"];
    assert_eq!(estimate["writes_per_second"], 400.0, "{summary}");
    let writes = estimate["directory_writes"].as_f64().unwrap();
    assert!(writes > 0.0);
    // The token-bucket bound: a full bucket at once, the rest at the refill.
    let at_once = estimate["at_once"].as_f64().unwrap();
    assert_eq!(at_once, 6_000.0, "two apps' buckets");
    assert_eq!(
        estimate["seconds"].as_f64().unwrap(),
        (writes - at_once).max(0.0) / 400.0
    );
}

/// `--write-config` refuses what the configuration could not load.
#[test]
fn write_config_refuses_a_slow_time_scale_and_odd_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("resetctl.yaml");
    let config = config.to_str().unwrap();
    for (args, needle) in [
        (vec!["--time-scale", "0.5"], "--time-scale >= 1"),
        (vec!["--tenant-name", "a b"], "--tenant-name"),
        (vec!["--secret-env", "1SECRET"], "--secret-env"),
    ] {
        let mut all = vec!["emulator", "--users", "10", "--write-config", config];
        all.extend(args);
        let out = crate::util::resetctl_in(dir.path(), &all);
        assert_eq!(crate::util::code(&out), 1, "{all:?}");
        assert!(
            crate::util::stderr(&out).contains(needle),
            "{}",
            crate::util::stderr(&out)
        );
        assert!(!std::path::Path::new(config).exists());
    }
}

/// The CSDL contract: every property the emulator returns exists on its entity type in the
/// Graph v1.0 metadata (walking BaseType), with a compatible JSON type.
mod contract {
    use serde_json::{Value, json};

    use super::*;
    use crate::csdl::load;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_returned_property_exists_in_the_v1_csdl() {
        let csdl = load();
        let (_dir, emu) = small_tenant().await;
        let info = emu.info().clone();
        let api = Api::new(&info, 0).await;
        let mut problems = Vec::new();
        let mut checked = 0;
        let all = resetctl::emulator::USER_PROPERTIES.join(",");
        // Users: every selectable property, for a cloud user and a synced one; the default set.
        for upn in [
            "alice@contoso.example",
            "bob@contoso.example",
            "ceo@contoso.example",
        ] {
            let (s, u) = api.get_json(&format!("/users/{upn}?$select={all}")).await;
            assert_eq!(s, 200);
            assert_eq!(
                u.as_object().unwrap().len(),
                resetctl::emulator::USER_PROPERTIES.len() + 1
            );
            checked += csdl.check("user", &u, upn, &mut problems);
        }
        let (_, list) = api.get_json("/users?$expand=manager").await;
        for (i, u) in list["value"].as_array().unwrap().iter().enumerate() {
            checked += csdl.check("user", u, &format!("users[{i}]"), &mut problems);
        }
        let (_, m) = api.get_json("/users/alice@contoso.example/manager").await;
        checked += csdl.check("directoryObject", &m, "manager", &mut problems);
        // Authentication methods, including a TAP (201 body and listed).
        let tap: Value = api
            .send_expect(
                Method::POST,
                "/users/alice@contoso.example/authentication/temporaryAccessPassMethods",
                Some(json!({"lifetimeInMinutes": 60})),
                201,
            )
            .await
            .json()
            .await
            .unwrap();
        checked += csdl.check(
            "temporaryAccessPassAuthenticationMethod",
            &tap,
            "tap",
            &mut problems,
        );
        let (_, methods) = api
            .get_json("/users/alice@contoso.example/authentication/methods")
            .await;
        let methods = methods["value"].as_array().unwrap();
        assert_eq!(methods.len(), 8, "password, six seeded kinds and the TAP");
        for (i, m) in methods.iter().enumerate() {
            checked += csdl.check(
                "authenticationMethod",
                m,
                &format!("methods[{i}]"),
                &mut problems,
            );
        }
        // Role assignments (principal expanded), eligibility instances.
        let (_, ra) = api
            .get_json("/roleManagement/directory/roleAssignments?$expand=principal")
            .await;
        for (i, a) in ra["value"].as_array().unwrap().iter().enumerate() {
            checked += csdl.check(
                "unifiedRoleAssignment",
                a,
                &format!("roleAssignments[{i}]"),
                &mut problems,
            );
        }
        let (_, el) = api
            .get_json("/roleManagement/directory/roleEligibilityScheduleInstances")
            .await;
        for (i, e) in el["value"].as_array().unwrap().iter().enumerate() {
            checked += csdl.check(
                "unifiedRoleEligibilityScheduleInstance",
                e,
                &format!("eligibility[{i}]"),
                &mut problems,
            );
        }
        // Risky users, before and after the actions.
        let (_, ru) = api.get_json("/identityProtection/riskyUsers").await;
        for (i, r) in ru["value"].as_array().unwrap().iter().enumerate() {
            checked += csdl.check("riskyUser", r, &format!("riskyUsers[{i}]"), &mut problems);
        }
        // Groups and members.
        let (_, groups) = api.get_json("/groups").await;
        for (i, g) in groups["value"].as_array().unwrap().iter().enumerate() {
            checked += csdl.check("group", g, &format!("groups[{i}]"), &mut problems);
            let (_, members) = api
                .get_json(&format!(
                    "/groups/{}/transitiveMembers",
                    g["id"].as_str().unwrap()
                ))
                .await;
            for (j, m) in members["value"].as_array().unwrap().iter().enumerate() {
                checked += csdl.check(
                    "directoryObject",
                    m,
                    &format!("groups[{i}].members[{j}]"),
                    &mut problems,
                );
            }
        }
        // After a reset and a dismiss, the new enum values are members too.
        let pw = json!({"passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Xy7#kLm2pQ9!"}});
        api.send_expect(Method::PATCH, "/users/alice@contoso.example", Some(pw), 204)
            .await;
        let (_, helpdesk) = api
            .get_json("/users/helpdesk@contoso.example?$select=id")
            .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        api.send_expect(
            Method::POST,
            "/identityProtection/riskyUsers/dismiss",
            Some(json!({"userIds": [helpdesk["id"]]})),
            204,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (_, ru) = api.get_json("/identityProtection/riskyUsers").await;
        let details: Vec<&str> = ru["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["riskDetail"].as_str().unwrap())
            .collect();
        assert!(
            details.contains(&"adminGeneratedTemporaryPassword")
                && details.contains(&"adminDismissedAllRiskForUser"),
            "{details:?}"
        );
        for (i, r) in ru["value"].as_array().unwrap().iter().enumerate() {
            checked += csdl.check(
                "riskyUser",
                r,
                &format!("riskyUsers-after[{i}]"),
                &mut problems,
            );
        }
        assert!(
            problems.is_empty(),
            "CSDL contract violations:\n{}",
            problems.join("\n")
        );
        assert!(checked > 150, "only {checked} properties checked");
        emu.shutdown().await;
    }

    /// What the emulator reads from request bodies is what the metadata declares: each
    /// property it accepts exists on the type with the same type, and the `@odata.type`s it
    /// accepts are the type and exactly the types derived from it.
    #[test]
    fn the_emulators_request_body_types_match_the_v1_csdl() {
        let csdl = load();
        for ty in resetctl::emulator::body::BODY_TYPES {
            for (name, declared) in ty.properties {
                let prop = csdl
                    .find(ty.name, name)
                    .unwrap_or_else(|| panic!("{name} is not a property of {}", ty.name));
                assert_eq!(prop.ty, *declared, "{}.{name}", ty.name);
                assert!(!prop.navigation, "{}.{name}", ty.name);
            }
            let mut derived: Vec<String> = ty.derived.iter().map(|d| d.to_string()).collect();
            derived.sort();
            assert_eq!(
                derived,
                csdl.derived_types(ty.name),
                "types derived from {}",
                ty.name
            );
        }
    }

    /// Request bodies in both annotation forms (`@odata.type` on the object and on nested
    /// complex values, `property@odata.type` on a property) are valid v1.0 payloads, and the
    /// emulator accepts them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn annotated_request_bodies_are_v1_payloads_the_emulator_accepts() {
        let csdl = load();
        let (_dir, emu) = small_tenant().await;
        let api = Api::new(emu.info(), 0).await;
        let alice = "/users/alice@contoso.example";
        let cases = [
            (
                "user",
                Method::PATCH,
                alice.to_string(),
                json!({
                    "@odata.type": "#microsoft.graph.user",
                    "passwordProfile": {
                        "@odata.type": "#microsoft.graph.passwordProfile",
                        "forceChangePasswordNextSignIn": true,
                        "forceChangePasswordNextSignInWithMfa": false,
                        "password": "Xy7#kLm2pQ9!",
                    },
                    "accountEnabled": true,
                }),
                204,
            ),
            (
                "user",
                Method::PATCH,
                alice.to_string(),
                json!({
                    "passwordProfile@odata.type": "#microsoft.graph.passwordProfile",
                    "passwordProfile": {"password": "Zq8$wErt5uI!"},
                    "businessPhones@odata.type": "#Collection(String)",
                    "businessPhones": ["+1 425 555 0199"],
                    "mobilePhone@odata.type": "#Edm.String",
                    "mobilePhone": "+1 425 555 0100",
                    "surname@odata.type": "#String",
                    "surname": "Jones-Smith",
                }),
                204,
            ),
            (
                "temporaryAccessPassAuthenticationMethod",
                Method::POST,
                format!("{alice}/authentication/temporaryAccessPassMethods"),
                json!({
                    "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
                    "lifetimeInMinutes@odata.type": "#Int32",
                    "lifetimeInMinutes": 60,
                    "isUsableOnce": false,
                }),
                201,
            ),
        ];
        for (ty, method, path, body, status) in cases {
            let mut problems = Vec::new();
            csdl.check(ty, &body, ty, &mut problems);
            assert!(
                problems.is_empty(),
                "{body} is not a v1.0 {ty}: {problems:?}"
            );
            api.send_expect(method, &path, Some(body), status).await;
        }
        emu.shutdown().await;
    }
}
