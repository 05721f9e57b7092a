//! The OData query subset the emulator understands: `$filter` (eq, ne, in, startswith,
//! endswith, not, and, or, parentheses), `$select`, `$top`, `$count`, `$expand` (names and
//! their `$select`)
//! and the opaque `$skiptoken` of `@odata.nextLink`.
//!
//! Advanced queries (<https://learn.microsoft.com/graph/aad-advanced-queries>): `ne`, `not`,
//! `endswith` and `$count` need the header `ConsistencyLevel: eventual` and `$count=true`;
//! without them `$count=true` is silently ignored and the operators are refused with
//! `Request_UnsupportedQuery`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// 'text'
    Str(String),
    /// true / false
    Bool(bool),
    /// null
    Null,
    /// an integer
    Int(i64),
}

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    /// prop eq literal
    Eq(String, Literal),
    /// prop ne literal
    Ne(String, Literal),
    /// prop in (literals)
    In(String, Vec<Literal>),
    /// startswith(prop, 'x')
    StartsWith(String, String),
    /// endswith(prop, 'x')
    EndsWith(String, String),
    /// not (expr)
    Not(Box<Filter>),
    /// a and b
    And(Box<Filter>, Box<Filter>),
    /// a or b
    Or(Box<Filter>, Box<Filter>),
}

/// A value of an entity's property, as the filter sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A string (compared case-insensitively, as directory string filters are).
    Str(std::borrow::Cow<'a, str>),
    /// A boolean.
    Bool(bool),
    /// null.
    Null,
}

/// Why a query was refused: already in Graph's words.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    /// Graph error code.
    pub code: &'static str,
    /// Graph error message.
    pub message: String,
}

fn bad(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "BadRequest",
        message: message.into(),
    }
}

/// Something a filter can be evaluated on.
pub trait Filterable {
    /// The value of a filterable property; `None` when the property is unknown.
    fn property(&self, name: &str) -> Option<Value<'_>>;
}

impl Filter {
    /// Whether the filter needs an advanced query (ConsistencyLevel + $count).
    pub fn is_advanced(&self) -> bool {
        match self {
            Filter::Ne(..) | Filter::EndsWith(..) | Filter::Not(_) => true,
            Filter::Eq(..) | Filter::In(..) | Filter::StartsWith(..) => false,
            Filter::And(a, b) | Filter::Or(a, b) => a.is_advanced() || b.is_advanced(),
        }
    }

    /// Every property the filter names.
    pub fn properties(&self) -> Vec<&str> {
        match self {
            Filter::Eq(p, _)
            | Filter::Ne(p, _)
            | Filter::In(p, _)
            | Filter::StartsWith(p, _)
            | Filter::EndsWith(p, _) => vec![p.as_str()],
            Filter::Not(a) => a.properties(),
            Filter::And(a, b) | Filter::Or(a, b) => {
                let mut v = a.properties();
                v.extend(b.properties());
                v
            }
        }
    }

    /// Evaluate on one entity. Unknown properties evaluate to false (validate first).
    pub fn matches(&self, e: &dyn Filterable) -> bool {
        match self {
            Filter::Eq(p, lit) => e.property(p).is_some_and(|v| equal(&v, lit)),
            Filter::Ne(p, lit) => e.property(p).is_some_and(|v| !equal(&v, lit)),
            Filter::In(p, lits) => e
                .property(p)
                .is_some_and(|v| lits.iter().any(|l| equal(&v, l))),
            Filter::StartsWith(p, prefix) => match e.property(p) {
                Some(Value::Str(s)) => s.to_lowercase().starts_with(&prefix.to_lowercase()),
                _ => false,
            },
            Filter::EndsWith(p, suffix) => match e.property(p) {
                Some(Value::Str(s)) => s.to_lowercase().ends_with(&suffix.to_lowercase()),
                _ => false,
            },
            Filter::Not(a) => !a.matches(e),
            Filter::And(a, b) => a.matches(e) && b.matches(e),
            Filter::Or(a, b) => a.matches(e) || b.matches(e),
        }
    }
}

fn equal(v: &Value<'_>, lit: &Literal) -> bool {
    match (v, lit) {
        (Value::Str(s), Literal::Str(l)) => {
            s.eq_ignore_ascii_case(l) || s.to_lowercase() == l.to_lowercase()
        }
        (Value::Str(s), Literal::Int(i)) => s.as_ref() == i.to_string(),
        (Value::Bool(b), Literal::Bool(l)) => b == l,
        (Value::Null, Literal::Null) => true,
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    LParen,
    RParen,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, QueryError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(bad("Invalid filter clause: unterminated string literal."));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            lit.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(lit));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse()
                    .map_err(|_| bad(format!("Invalid filter clause: bad number '{text}'.")))?;
                out.push(Tok::Int(n));
            }
            c if c.is_alphanumeric() || c == '_' || c == '/' || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '/' | '.'))
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => {
                return Err(bad(format!(
                    "Invalid filter clause: syntax error at character '{other}'."
                )));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// Nesting of `not` and parentheses, bounded so a hostile filter cannot exhaust the stack.
    depth: u32,
    /// Number of `and`/`or` joins, bounded for the same reason.
    clauses: u32,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }
    fn expect(&mut self, tok: Tok) -> Result<(), QueryError> {
        match self.next() {
            Some(t) if t == tok => Ok(()),
            _ => Err(bad("Invalid filter clause: syntax error.")),
        }
    }
    fn clause(&mut self) -> Result<(), QueryError> {
        self.clauses += 1;
        if self.clauses > 100 {
            return Err(bad("Invalid filter clause: too many clauses."));
        }
        Ok(())
    }
    fn or(&mut self) -> Result<Filter, QueryError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.clause()?;
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Filter, QueryError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.clause()?;
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Filter, QueryError> {
        if self.depth > 32 {
            return Err(bad(
                "Invalid filter clause: the expression is nested too deeply.",
            ));
        }
        if self.keyword("not") {
            self.pos += 1;
            self.depth += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            self.depth += 1;
            let inner = self.or()?;
            self.depth -= 1;
            self.expect(Tok::RParen)?;
            return Ok(inner);
        }
        let Some(Tok::Ident(name)) = self.next() else {
            return Err(bad("Invalid filter clause: syntax error."));
        };
        let lname = name.to_ascii_lowercase();
        if (lname == "startswith" || lname == "endswith") && self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let Some(Tok::Ident(prop)) = self.next() else {
                return Err(bad("Invalid filter clause: syntax error."));
            };
            self.expect(Tok::Comma)?;
            let Some(Tok::Str(arg)) = self.next() else {
                return Err(bad("Invalid filter clause: syntax error."));
            };
            self.expect(Tok::RParen)?;
            return Ok(if lname == "startswith" {
                Filter::StartsWith(prop, arg)
            } else {
                Filter::EndsWith(prop, arg)
            });
        }
        let Some(Tok::Ident(op)) = self.next() else {
            return Err(bad("Invalid filter clause: syntax error."));
        };
        match op.to_ascii_lowercase().as_str() {
            "eq" => Ok(Filter::Eq(name, self.literal()?)),
            "ne" => Ok(Filter::Ne(name, self.literal()?)),
            "in" => {
                self.expect(Tok::LParen)?;
                let mut lits = vec![self.literal()?];
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    lits.push(self.literal()?);
                }
                self.expect(Tok::RParen)?;
                if lits.len() > 15 {
                    return Err(bad("Too many values in 'in' clause. Maximum is 15."));
                }
                Ok(Filter::In(name, lits))
            }
            other => Err(bad(format!(
                "Invalid filter clause: operator '{other}' is not supported."
            ))),
        }
    }
    fn literal(&mut self) -> Result<Literal, QueryError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Literal::Str(s)),
            Some(Tok::Int(i)) => Ok(Literal::Int(i)),
            Some(Tok::Ident(s)) if s == "true" => Ok(Literal::Bool(true)),
            Some(Tok::Ident(s)) if s == "false" => Ok(Literal::Bool(false)),
            Some(Tok::Ident(s)) if s == "null" => Ok(Literal::Null),
            _ => Err(bad("Invalid filter clause: a literal was expected.")),
        }
    }
}

/// Parse a `$filter` expression.
pub fn parse_filter(s: &str) -> Result<Filter, QueryError> {
    let mut p = Parser {
        toks: tokenize(s)?,
        pos: 0,
        depth: 0,
        clauses: 0,
    };
    let f = p.or()?;
    if p.pos != p.toks.len() {
        return Err(bad("Invalid filter clause: syntax error."));
    }
    Ok(f)
}

/// The query options of one collection request, parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// $filter text and tree.
    pub filter: Option<(String, Filter)>,
    /// $select names (None: the default set).
    pub select: Option<Vec<String>>,
    /// $expand names.
    pub expand: Vec<String>,
    /// $top.
    pub top: Option<u32>,
    /// $count=true with ConsistencyLevel: eventual.
    pub count: bool,
    /// Whether the request was an advanced query (header + $count=true).
    pub advanced: bool,
    /// $skiptoken position (index of the next item).
    #[serde(skip)]
    pub skip: usize,
}

/// What is carried inside a `$skiptoken`: the original query and the position.
#[derive(Serialize, Deserialize)]
struct Token {
    /// Position of the next item.
    p: usize,
    /// Original query.
    q: Query,
    /// Collection it belongs to.
    c: String,
}

/// Encode an opaque skiptoken for `collection` from `query` at position `pos`.
pub fn encode_skiptoken(collection: &str, query: &Query, pos: usize) -> String {
    let token = Token {
        p: pos,
        q: query.clone(),
        c: collection.to_string(),
    };
    let json = serde_json::to_vec(&token).unwrap_or_default();
    format!("RFNwdA{}", URL_SAFE_NO_PAD.encode(json))
}

fn decode_skiptoken(collection: &str, token: &str) -> Result<Query, QueryError> {
    let invalid = || bad("Specified skiptoken is invalid.");
    let body = token.strip_prefix("RFNwdA").ok_or_else(invalid)?;
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
    let t: Token = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if t.c != collection {
        return Err(invalid());
    }
    let mut q = t.q;
    q.skip = t.p;
    // The token came from the client: re-derive what the parser would have checked.
    if q.top.is_some_and(|top| !(1..=999).contains(&top)) {
        return Err(invalid());
    }
    if let Some((text, _)) = q.filter.take() {
        let tree = parse_filter(&text)?;
        q.filter = Some((text, tree));
    }
    Ok(q)
}

/// Percent-decode a query component (`+` is a space).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Split `a,b(c,d),e` at the commas outside parentheses (for `$expand` and `$select`).
pub fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out.retain(|x| !x.is_empty());
    out
}

/// An `$expand` item `name(options)` split into the name and its `$select` list, if any.
pub fn expand_item(item: &str) -> (String, Option<Vec<String>>) {
    let Some((name, rest)) = item.split_once('(') else {
        return (item.trim().to_string(), None);
    };
    let inner = rest.strip_suffix(')').unwrap_or(rest);
    let select = inner.split(';').find_map(|opt| {
        let (k, v) = opt.split_once('=')?;
        k.trim()
            .trim_start_matches('$')
            .eq_ignore_ascii_case("select")
            .then(|| {
                v.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
    });
    (name.trim().to_string(), select)
}

/// Split a raw query string into decoded (name, value) pairs.
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Parse the query options of a collection request. `eventual` says whether the
/// `ConsistencyLevel: eventual` header was sent. `$top` outside 1..=999 is Graph's 400.
pub fn parse_query(
    collection: &str,
    pairs: &[(String, String)],
    eventual: bool,
) -> Result<Query, QueryError> {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(&name[1..]))
            .map(|(_, v)| v.as_str())
    };
    if let Some(token) = get("$skiptoken") {
        return decode_skiptoken(collection, token);
    }
    if get("$skip").is_some() {
        return Err(bad(
            "The query specified in the URI is not valid. Query option 'Skip' is not allowed. To allow it, set the 'AllowedQueryOptions' property on EnableQueryAttribute or QueryValidationSettings.",
        ));
    }
    let mut q = Query::default();
    if let Some(top) = get("$top") {
        let n: i64 = top.trim().parse().map_err(|_| {
            bad(format!(
                "Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
            ))
        })?;
        if !(1..=999).contains(&n) {
            // Graph's words (https://learn.microsoft.com/en-us/answers/questions/1129204).
            return Err(bad(format!(
                "Invalid page size specified: '{n}'. Must be between 1 and 999 inclusive."
            )));
        }
        q.top = Some(n as u32);
    }
    let count_requested = get("$count").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    q.advanced = eventual && count_requested;
    q.count = q.advanced;
    if let Some(sel) = get("$select") {
        q.select = Some(
            sel.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    if let Some(exp) = get("$expand") {
        q.expand = split_top_level(exp);
    }
    if get("$orderby").is_some() {
        return Err(QueryError {
            code: "Request_UnsupportedQuery",
            message: "$orderby is not supported by the emulated tenant.".to_string(),
        });
    }
    if let Some(f) = get("$filter") {
        let tree = parse_filter(f)?;
        if tree.is_advanced() && !q.advanced {
            return Err(QueryError {
                code: "Request_UnsupportedQuery",
                message: "Unsupported Query.".to_string(),
            });
        }
        q.filter = Some((f.to_string(), tree));
    }
    if get("$search").is_some() && eventual {
        return Err(QueryError {
            code: "Request_UnsupportedQuery",
            message: "$search is not supported by the emulated tenant.".to_string(),
        });
    }
    if get("$search").is_some() && !eventual {
        return Err(QueryError {
            code: "Request_UnsupportedQuery",
            message: "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'".to_string(),
        });
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct U(&'static str, bool);
    impl Filterable for U {
        fn property(&self, name: &str) -> Option<Value<'_>> {
            match name {
                "department" => Some(Value::Str(self.0.into())),
                "accountEnabled" => Some(Value::Bool(self.1)),
                _ => None,
            }
        }
    }

    #[test]
    fn filters_parse_and_match() {
        let f = parse_filter("department eq 'Finance' and accountEnabled eq true").unwrap();
        assert!(f.matches(&U("finance", true)));
        assert!(!f.matches(&U("Finance", false)));
        let f = parse_filter("department in ('Sales', 'Legal') or startswith(department,'fin')")
            .unwrap();
        assert!(f.matches(&U("Legal", false)));
        assert!(f.matches(&U("Finance", false)));
        assert!(!f.matches(&U("IT", false)));
        let f = parse_filter("not (department eq 'IT')").unwrap();
        assert!(f.is_advanced());
        assert!(f.matches(&U("Sales", true)));
        assert_eq!(
            parse_filter("department eq 'O''Neil'").unwrap(),
            Filter::Eq("department".into(), Literal::Str("O'Neil".into()))
        );
        assert!(parse_filter("department eq").is_err());
        assert!(parse_filter("department gt 'a'").is_err());
        let deep = format!(
            "{}department eq 'x'{}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(
            parse_filter(&deep).is_err(),
            "deep nesting is refused, not a stack overflow"
        );
    }

    #[test]
    fn top_bounds_and_skiptoken_round_trip() {
        let pairs = |s: &str| query_pairs(s);
        let err = parse_query("users", &pairs("$top=1000"), false).unwrap_err();
        assert_eq!(
            err.message,
            "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
        );
        assert!(parse_query("users", &pairs("$top=0"), false).is_err());
        let q = parse_query(
            "users",
            &pairs("$top=5&$select=id,displayName&$count=true"),
            false,
        )
        .unwrap();
        assert!(!q.count, "$count without ConsistencyLevel is ignored");
        let tok = encode_skiptoken("users", &q, 10);
        let back = parse_query("users", &[("$skiptoken".into(), tok.clone())], false).unwrap();
        assert_eq!(back.skip, 10);
        assert_eq!(back.top, Some(5));
        assert!(parse_query("groups", &[("$skiptoken".into(), tok)], false).is_err());
        assert_eq!(
            parse_query(
                "users",
                &pairs("$filter=accountEnabled%20ne%20false"),
                false
            )
            .unwrap_err()
            .code,
            "Request_UnsupportedQuery"
        );
        assert_eq!(percent_decode("a%20b+c%27"), "a b c'");
        assert_eq!(
            split_top_level("manager($select=id,displayName),x"),
            ["manager($select=id,displayName)", "x"]
        );
        assert_eq!(
            expand_item("manager($levels=max;$select=id,displayName)"),
            (
                "manager".to_string(),
                Some(vec!["id".to_string(), "displayName".to_string()])
            )
        );
        assert_eq!(expand_item("principal"), ("principal".to_string(), None));
        assert!(parse_query("users", &pairs("$orderby=displayName"), false).is_err());
    }
}
