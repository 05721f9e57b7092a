//! The `when:` mini-language: a condition over a user's attributes that decides whether a step
//! runs for that user.
//!
//! It is parsed and type-checked when the playbook is loaded (never evaluated as a template), so
//! a typo in an attribute or a level fails `resetctl validate`, not a run at 3 a.m. Grammar
//! (see PLAYBOOKS.md):
//!
//! ```text
//! condition  := or
//! or         := and ( "or" and )*
//! and        := unary ( "and" unary )*
//! unary      := "not" unary | "(" condition ")" | comparison
//! comparison := flag [ ("==" | "!=") bool ]
//!             | text  ( "==" | "!=" ) string
//!             | text  ( "in" | "not" "in" ) "[" string ( "," string )* [","] "]"
//!             | text  ( "startswith" | "endswith" | "contains" ) string
//!             | risk_level ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) level
//!             | risk_level ( "in" | "not" "in" ) "[" level ( "," level )* [","] "]"
//! flag       := has_mobile | synced | account_enabled | sspr_capable | has_authenticator
//! text       := upn | department | job_title
//! level      := none | low | medium | high          (also quoted: 'high')
//! string     := '...' | "..."
//! ```
//!
//! Text comparisons ignore case (directory values are case-preserving, not case-significant).
//! A text attribute the directory does not have (no department) equals nothing: `==`, `in`,
//! `startswith`, `endswith` and `contains` are false, `!=` and `not in` are true.

use std::fmt;

use super::model::RiskLevel;

/// What the engine knows about one user when it decides whether a step applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFacts<'a> {
    /// The user principal name.
    pub upn: &'a str,
    /// The directory department, if set.
    pub department: Option<&'a str>,
    /// The directory job title, if set.
    pub job_title: Option<&'a str>,
    /// Whether a mobile phone is on record (an SMS channel exists).
    pub has_mobile: bool,
    /// Whether the account is synced from on-premises AD (`onPremisesSyncEnabled`).
    pub synced: bool,
    /// Whether the account can sign in.
    pub account_enabled: bool,
    /// Identity Protection's risk level (`none` when unknown or unlicensed).
    pub risk_level: RiskLevel,
    /// The user can reset their own password (SSPR registered and enabled: Graph's
    /// `isSsprCapable`). False when the registration state was not read.
    pub sspr_capable: bool,
    /// The Microsoft Authenticator app is registered. False when not read.
    pub has_authenticator: bool,
}

/// A yes/no attribute of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagAttr {
    /// `has_mobile`.
    HasMobile,
    /// `synced`.
    Synced,
    /// `account_enabled`.
    AccountEnabled,
    /// `sspr_capable` (read from the registration report).
    SsprCapable,
    /// `has_authenticator` (read from the registration report).
    HasAuthenticator,
}

impl FlagAttr {
    /// Whether the flag comes from the authentication methods registration report.
    pub fn is_registration(self) -> bool {
        matches!(self, FlagAttr::SsprCapable | FlagAttr::HasAuthenticator)
    }
}

/// A text attribute of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextAttr {
    /// `upn`.
    Upn,
    /// `department`.
    Department,
    /// `job_title`.
    JobTitle,
}

/// A comparison on a text attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `in [...]`
    In,
    /// `not in [...]`
    NotIn,
    /// `startswith`
    StartsWith,
    /// `endswith`
    EndsWith,
    /// `contains`
    Contains,
}

/// A comparison on the risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in [...]`
    In,
    /// `not in [...]`
    NotIn,
}

/// A parsed, type-checked `when:` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A flag compared with a boolean (`has_mobile` is `has_mobile == true`).
    Flag {
        /// Which flag.
        attr: FlagAttr,
        /// The value it must have.
        value: bool,
    },
    /// A text attribute compared with one or more strings.
    Text {
        /// Which attribute.
        attr: TextAttr,
        /// How it is compared.
        op: TextOp,
        /// One string, or the list of `in`/`not in`.
        values: Vec<String>,
    },
    /// The risk level compared with one or more levels.
    Risk {
        /// How it is compared.
        op: RiskOp,
        /// One level, or the list of `in`/`not in`.
        levels: Vec<RiskLevel>,
    },
    /// `not` of a condition.
    Not(Box<Condition>),
    /// Both conditions.
    And(Box<Condition>, Box<Condition>),
    /// Either condition.
    Or(Box<Condition>, Box<Condition>),
}

impl Condition {
    /// Whether the condition reads `risk_level` (targeting then needs every risk level).
    pub fn reads_risk(&self) -> bool {
        match self {
            Condition::Risk { .. } => true,
            Condition::Flag { .. } | Condition::Text { .. } => false,
            Condition::Not(c) => c.reads_risk(),
            Condition::And(a, b) | Condition::Or(a, b) => a.reads_risk() || b.reads_risk(),
        }
    }

    /// Whether the condition reads a registration flag (`sspr_capable`, `has_authenticator`):
    /// planning then reads the users' registration details.
    pub fn reads_registration(&self) -> bool {
        match self {
            Condition::Flag { attr, .. } => attr.is_registration(),
            Condition::Text { .. } | Condition::Risk { .. } => false,
            Condition::Not(c) => c.reads_registration(),
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.reads_registration() || b.reads_registration()
            }
        }
    }

    /// Whether the condition compares `attr` (targeting then reads it from the directory).
    pub fn reads_text(&self, attr: TextAttr) -> bool {
        match self {
            Condition::Text { attr: a, .. } => *a == attr,
            Condition::Flag { .. } | Condition::Risk { .. } => false,
            Condition::Not(c) => c.reads_text(attr),
            Condition::And(a, b) | Condition::Or(a, b) => a.reads_text(attr) || b.reads_text(attr),
        }
    }

    /// Whether the condition holds for `user`.
    pub fn eval(&self, user: &UserFacts<'_>) -> bool {
        match self {
            Condition::Flag { attr, value } => {
                let actual = match attr {
                    FlagAttr::HasMobile => user.has_mobile,
                    FlagAttr::Synced => user.synced,
                    FlagAttr::AccountEnabled => user.account_enabled,
                    FlagAttr::SsprCapable => user.sspr_capable,
                    FlagAttr::HasAuthenticator => user.has_authenticator,
                };
                actual == *value
            }
            Condition::Text { attr, op, values } => {
                let actual = match attr {
                    TextAttr::Upn => Some(user.upn),
                    TextAttr::Department => user.department,
                    TextAttr::JobTitle => user.job_title,
                };
                eval_text(actual, *op, values)
            }
            Condition::Risk { op, levels } => {
                let actual = user.risk_level;
                let first = levels.first().copied().unwrap_or(RiskLevel::None);
                match op {
                    RiskOp::Eq => actual == first,
                    RiskOp::Ne => actual != first,
                    RiskOp::Lt => actual < first,
                    RiskOp::Le => actual <= first,
                    RiskOp::Gt => actual > first,
                    RiskOp::Ge => actual >= first,
                    RiskOp::In => levels.contains(&actual),
                    RiskOp::NotIn => !levels.contains(&actual),
                }
            }
            Condition::Not(c) => !c.eval(user),
            Condition::And(a, b) => a.eval(user) && b.eval(user),
            Condition::Or(a, b) => a.eval(user) || b.eval(user),
        }
    }

    /// Whether `self` and `other` can never both hold: one is literally `not` of the other.
    /// Used to allow two alternative steps of the same kind (e.g. two `reset_password` steps
    /// under `when: has_mobile` and `when: not has_mobile`).
    /// Conjunctions count too: `X and A` excludes `not X and A`, since one of their `and`-ed
    /// parts excludes one of the other's.
    pub fn excludes(&self, other: &Condition) -> bool {
        let (mine, theirs) = (self.conjuncts(), other.conjuncts());
        self.literally_excludes(other)
            || mine
                .iter()
                .any(|a| theirs.iter().any(|b| a.literally_excludes(b)))
    }

    /// One is literally `not` of the other, or the same flag with opposite values.
    fn literally_excludes(&self, other: &Condition) -> bool {
        matches!(self, Condition::Not(inner) if **inner == *other)
            || matches!(other, Condition::Not(inner) if **inner == *self)
            || matches!(
                (self, other),
                (Condition::Flag { attr: a, value: x }, Condition::Flag { attr: b, value: y })
                    if a == b && x != y
            )
    }

    /// The `and`-ed parts of the condition (itself when it is not an `and`).
    fn conjuncts(&self) -> Vec<&Condition> {
        match self {
            Condition::And(a, b) => {
                let mut parts = a.conjuncts();
                parts.extend(b.conjuncts());
                parts
            }
            other => vec![other],
        }
    }
}

fn eval_text(actual: Option<&str>, op: TextOp, values: &[String]) -> bool {
    let Some(actual) = actual else {
        return matches!(op, TextOp::Ne | TextOp::NotIn);
    };
    let actual = actual.to_lowercase();
    let first = values.first().map(|v| v.to_lowercase()).unwrap_or_default();
    match op {
        TextOp::Eq => actual == first,
        TextOp::Ne => actual != first,
        TextOp::In => values.iter().any(|v| v.to_lowercase() == actual),
        TextOp::NotIn => !values.iter().any(|v| v.to_lowercase() == actual),
        TextOp::StartsWith => actual.starts_with(&first),
        TextOp::EndsWith => actual.ends_with(&first),
        TextOp::Contains => actual.contains(&first),
    }
}

/// Why a condition did not parse or type-check, and where inside the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// Byte offset of the offending token inside the expression.
    pub offset: usize,
    /// Byte length of the offending token (at least 1 when the expression is not empty).
    pub len: usize,
    /// What is wrong.
    pub message: String,
}

/// The attribute names a condition may use, for error messages and documentation.
pub const ATTRIBUTES: &[&str] = &[
    "upn",
    "department",
    "job_title",
    "has_mobile",
    "synced",
    "account_enabled",
    "sspr_capable",
    "has_authenticator",
    "risk_level",
];

/// Parse and type-check `expr`.
pub fn parse(expr: &str) -> Result<Condition, ConditionError> {
    let tokens = lex(expr)?;
    if let Some(tok) = tokens.get(MAX_TOKENS) {
        // `and`/`or` chains build a tree as deep as they are long; keep it shallow.
        return Err(tok.error(format!(
            "condition too long: more than {MAX_TOKENS} words and symbols; split the step"
        )));
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        end: expr.len(),
        depth: 0,
    };
    if parser.tokens.is_empty() {
        return Err(ConditionError {
            offset: 0,
            len: 0,
            message: "empty condition: expected an attribute such as `has_mobile`".into(),
        });
    }
    let cond = parser.or()?;
    if let Some(tok) = parser.peek() {
        return Err(tok.error(format!(
            "unexpected {} after a complete condition: expected `and`, `or` or the end",
            tok.kind
        )));
    }
    Ok(cond)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Op(&'static str),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Ident(s) => write!(f, "`{s}`"),
            Kind::Str(s) => write!(f, "string '{s}'"),
            Kind::LParen => f.write_str("`(`"),
            Kind::RParen => f.write_str("`)`"),
            Kind::LBracket => f.write_str("`[`"),
            Kind::RBracket => f.write_str("`]`"),
            Kind::Comma => f.write_str("`,`"),
            Kind::Op(op) => write!(f, "`{op}`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    offset: usize,
    len: usize,
}

impl Token {
    fn error(&self, message: impl Into<String>) -> ConditionError {
        ConditionError {
            offset: self.offset,
            len: self.len,
            message: message.into(),
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(&self.kind, Kind::Ident(s) if s == word)
    }
}

fn lex(expr: &str) -> Result<Vec<Token>, ConditionError> {
    let mut tokens = Vec::new();
    let mut chars = expr.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let single = |kind| Token {
            kind,
            offset: start,
            len: 1,
        };
        match c {
            '(' | ')' | '[' | ']' | ',' => {
                chars.next();
                tokens.push(single(match c {
                    '(' => Kind::LParen,
                    ')' => Kind::RParen,
                    '[' => Kind::LBracket,
                    ']' => Kind::RBracket,
                    _ => Kind::Comma,
                }));
            }
            '\'' | '"' => {
                chars.next();
                let mut value = String::new();
                let mut closed = None;
                for (i, ch) in chars.by_ref() {
                    if ch == c {
                        closed = Some(i);
                        break;
                    }
                    value.push(ch);
                }
                let Some(end) = closed else {
                    return Err(ConditionError {
                        offset: start,
                        len: 1,
                        message: format!("unterminated string: no closing {c}"),
                    });
                };
                tokens.push(Token {
                    kind: Kind::Str(value),
                    offset: start,
                    len: end + 1 - start,
                });
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let next_is_eq = matches!(chars.peek(), Some(&(_, '=')));
                let op = match (c, next_is_eq) {
                    ('=', true) => "==",
                    ('!', true) => "!=",
                    ('<', true) => "<=",
                    ('>', true) => ">=",
                    ('<', false) => "<",
                    ('>', false) => ">",
                    ('=', false) => {
                        return Err(ConditionError {
                            offset: start,
                            len: 1,
                            message: "`=` is not an operator: write `==` to compare".into(),
                        });
                    }
                    _ => {
                        return Err(ConditionError {
                            offset: start,
                            len: 1,
                            message:
                                "`!` is not an operator: write `not` to negate, `!=` to compare"
                                    .into(),
                        });
                    }
                };
                if next_is_eq {
                    chars.next();
                }
                tokens.push(Token {
                    kind: Kind::Op(op),
                    offset: start,
                    len: op.len(),
                });
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = start;
                while let Some(&(i, ch)) = chars.peek() {
                    if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                        end = i + ch.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token {
                    kind: Kind::Ident(expr[start..end].to_owned()),
                    offset: start,
                    len: end - start,
                });
            }
            other => {
                return Err(ConditionError {
                    offset: start,
                    len: other.len_utf8(),
                    message: format!(
                        "unexpected character `{other}`: strings are quoted, e.g. 'Finance'"
                    ),
                });
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Length of the expression, where "unexpected end" errors point.
    end: usize,
    /// Current nesting of `not` and parentheses, bounded by [`MAX_DEPTH`] so that hostile
    /// input cannot exhaust the stack.
    depth: usize,
}

/// Most tokens a condition may have.
const MAX_TOKENS: usize = 256;

/// Deepest nesting of `not` and parentheses a condition may have.
const MAX_DEPTH: usize = 32;

enum Attr {
    Flag(FlagAttr),
    Text(TextAttr),
    Risk,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let tok = self.tokens.get(self.pos).cloned();
        if tok.is_some() {
            self.pos += 1;
        }
        tok
    }

    fn end_error(&self, what: &str) -> ConditionError {
        ConditionError {
            offset: self.end,
            len: 0,
            message: format!("unexpected end of condition: expected {what}"),
        }
    }

    fn expect_next(&mut self, what: &str) -> Result<Token, ConditionError> {
        self.next().ok_or_else(|| self.end_error(what))
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_word(word)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            let right = self.and()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.unary()?;
        while self.eat_word("and") {
            let right = self.unary()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Condition, ConditionError> {
        let tok = self.expect_next("an attribute, `not` or `(`")?;
        if self.depth >= MAX_DEPTH {
            return Err(tok.error(format!(
                "condition nested too deeply (more than {MAX_DEPTH} levels of `not` and parentheses)"
            )));
        }
        self.depth += 1;
        let result = self.unary_inner(tok);
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self, tok: Token) -> Result<Condition, ConditionError> {
        match &tok.kind {
            Kind::Ident(w) if w == "not" => Ok(Condition::Not(Box::new(self.unary()?))),
            Kind::LParen => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token {
                        kind: Kind::RParen, ..
                    }) => Ok(inner),
                    Some(other) => Err(other.error(format!(
                        "expected `)` to close the `(` at column {}, found {}",
                        tok.offset + 1,
                        other.kind
                    ))),
                    None => Err(tok.error("unclosed `(`: expected `)`")),
                }
            }
            Kind::Ident(_) => self.comparison(tok),
            other => Err(tok.error(format!(
                "unexpected {other}: expected an attribute ({})",
                ATTRIBUTES.join(", ")
            ))),
        }
    }

    fn attribute(tok: &Token) -> Result<Attr, ConditionError> {
        let Kind::Ident(name) = &tok.kind else {
            return Err(tok.error("expected an attribute"));
        };
        Ok(match name.as_str() {
            "has_mobile" => Attr::Flag(FlagAttr::HasMobile),
            "synced" => Attr::Flag(FlagAttr::Synced),
            "account_enabled" => Attr::Flag(FlagAttr::AccountEnabled),
            "sspr_capable" => Attr::Flag(FlagAttr::SsprCapable),
            "has_authenticator" => Attr::Flag(FlagAttr::HasAuthenticator),
            "upn" => Attr::Text(TextAttr::Upn),
            "department" => Attr::Text(TextAttr::Department),
            "job_title" => Attr::Text(TextAttr::JobTitle),
            "risk_level" => Attr::Risk,
            "and" | "or" | "in" | "startswith" | "endswith" | "contains" | "true" | "false" => {
                return Err(tok.error(format!(
                    "unexpected `{name}`: expected an attribute ({})",
                    ATTRIBUTES.join(", ")
                )));
            }
            _ => {
                return Err(tok.error(format!(
                    "unknown attribute `{name}`: expected one of {}",
                    ATTRIBUTES.join(", ")
                )));
            }
        })
    }

    /// The operator after an attribute, if any: `==`, `in`, `not in`, `startswith`, ...
    fn operator(&mut self) -> Option<(String, Token)> {
        let tok = self.peek()?.clone();
        let op = match &tok.kind {
            Kind::Op(op) => (*op).to_owned(),
            Kind::Ident(w)
                if matches!(w.as_str(), "in" | "startswith" | "endswith" | "contains") =>
            {
                w.clone()
            }
            Kind::Ident(w)
                if w == "not"
                    && self
                        .tokens
                        .get(self.pos + 1)
                        .is_some_and(|t| t.is_word("in")) =>
            {
                self.pos += 1;
                "not in".to_owned()
            }
            _ => return None,
        };
        self.pos += 1;
        Some((op, tok))
    }

    fn comparison(&mut self, attr_tok: Token) -> Result<Condition, ConditionError> {
        let attr = Self::attribute(&attr_tok)?;
        let name = match &attr_tok.kind {
            Kind::Ident(n) => n.clone(),
            _ => String::new(),
        };
        let op = self.operator();
        match attr {
            Attr::Flag(flag) => match op {
                None => Ok(Condition::Flag {
                    attr: flag,
                    value: true,
                }),
                Some((op, _)) if op == "==" || op == "!=" => {
                    let value = self.boolean()?;
                    Ok(Condition::Flag {
                        attr: flag,
                        value: if op == "==" { value } else { !value },
                    })
                }
                Some((op, op_tok)) => Err(op_tok.error(format!(
                    "operator `{op}` does not apply to `{name}`, which is true or false: write `{name}` or `not {name}`"
                ))),
            },
            Attr::Text(text) => {
                let Some((op, op_tok)) = op else {
                    return Err(attr_tok.error(format!(
                        "`{name}` is text and needs a comparison, e.g. `{name} == 'Finance'` or `{name} in ['Finance', 'HR']`"
                    )));
                };
                let (op, values) = match op.as_str() {
                    "==" => (TextOp::Eq, vec![self.string()?]),
                    "!=" => (TextOp::Ne, vec![self.string()?]),
                    "startswith" => (TextOp::StartsWith, vec![self.string()?]),
                    "endswith" => (TextOp::EndsWith, vec![self.string()?]),
                    "contains" => (TextOp::Contains, vec![self.string()?]),
                    "in" => (TextOp::In, self.list(|p| p.string())?),
                    "not in" => (TextOp::NotIn, self.list(|p| p.string())?),
                    other => {
                        return Err(op_tok.error(format!(
                            "operator `{other}` does not apply to text attribute `{name}`: use ==, !=, in, not in, startswith, endswith or contains"
                        )));
                    }
                };
                Ok(Condition::Text {
                    attr: text,
                    op,
                    values,
                })
            }
            Attr::Risk => {
                let Some((op, op_tok)) = op else {
                    return Err(attr_tok.error(
                        "`risk_level` needs a comparison, e.g. `risk_level >= medium`",
                    ));
                };
                let (op, levels) = match op.as_str() {
                    "==" => (RiskOp::Eq, vec![self.level()?]),
                    "!=" => (RiskOp::Ne, vec![self.level()?]),
                    "<" => (RiskOp::Lt, vec![self.level()?]),
                    "<=" => (RiskOp::Le, vec![self.level()?]),
                    ">" => (RiskOp::Gt, vec![self.level()?]),
                    ">=" => (RiskOp::Ge, vec![self.level()?]),
                    "in" => (RiskOp::In, self.list(|p| p.level())?),
                    "not in" => (RiskOp::NotIn, self.list(|p| p.level())?),
                    other => {
                        return Err(op_tok.error(format!(
                            "operator `{other}` does not apply to `risk_level`: use ==, !=, <, <=, >, >=, in or not in"
                        )));
                    }
                };
                Ok(Condition::Risk { op, levels })
            }
        }
    }

    fn boolean(&mut self) -> Result<bool, ConditionError> {
        let tok = self.expect_next("true or false")?;
        match &tok.kind {
            Kind::Ident(w) if w == "true" => Ok(true),
            Kind::Ident(w) if w == "false" => Ok(false),
            other => Err(tok.error(format!("expected true or false, found {other}"))),
        }
    }

    fn string(&mut self) -> Result<String, ConditionError> {
        let tok = self.expect_next("a quoted string")?;
        match tok.kind {
            Kind::Str(s) => Ok(s),
            Kind::Ident(w) => Err(ConditionError {
                offset: tok.offset,
                len: tok.len,
                message: format!("expected a quoted string, found `{w}`: write '{w}'"),
            }),
            other => Err(ConditionError {
                offset: tok.offset,
                len: tok.len,
                message: format!("expected a quoted string, found {other}"),
            }),
        }
    }

    fn level(&mut self) -> Result<RiskLevel, ConditionError> {
        let tok = self.expect_next("a risk level (none, low, medium, high)")?;
        let word = match &tok.kind {
            Kind::Ident(w) | Kind::Str(w) => w.clone(),
            other => {
                return Err(tok.error(format!(
                    "expected a risk level (none, low, medium, high), found {other}"
                )));
            }
        };
        RiskLevel::parse(&word).ok_or_else(|| {
            tok.error(format!(
                "`{word}` is not a risk level: expected none, low, medium or high"
            ))
        })
    }

    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, ConditionError>,
    ) -> Result<Vec<T>, ConditionError> {
        let open = self.expect_next("`[`")?;
        if open.kind != Kind::LBracket {
            return Err(open.error(format!(
                "expected a list in brackets, e.g. ['Finance', 'HR'], found {}",
                open.kind
            )));
        }
        let mut items = Vec::new();
        loop {
            if self.peek().is_some_and(|t| t.kind == Kind::RBracket) {
                self.pos += 1;
                break;
            }
            items.push(item(self)?);
            let sep = self
                .next()
                .ok_or_else(|| open.error("unclosed `[`: expected `]`"))?;
            match &sep.kind {
                Kind::Comma => {}
                Kind::RBracket => break,
                other => {
                    return Err(
                        sep.error(format!("expected `,` or `]` in the list, found {other}"))
                    );
                }
            }
        }
        if items.is_empty() {
            return Err(open.error("empty list: `in []` matches nobody"));
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserFacts<'static> {
        UserFacts {
            upn: "Ann.Lee@contoso.com",
            department: Some("Finance"),
            job_title: Some("Executive Assistant"),
            has_mobile: true,
            synced: false,
            account_enabled: true,
            risk_level: RiskLevel::Medium,
            sspr_capable: true,
            has_authenticator: false,
        }
    }

    #[test]
    fn conjunctions_with_opposite_parts_exclude_each_other() {
        let c = |e: &str| parse(e).unwrap();
        assert!(c("not synced and sspr_capable").excludes(&c("not synced and not sspr_capable")));
        assert!(c("has_mobile").excludes(&c("not has_mobile")));
        assert!(!c("synced and sspr_capable").excludes(&c("not has_mobile and sspr_capable")));
        assert!(!c("synced or sspr_capable").excludes(&c("not sspr_capable")));
    }

    #[test]
    fn registration_flags() {
        let mut u = user();
        assert!(holds("sspr_capable and not has_authenticator", &u));
        u.sspr_capable = false;
        assert!(holds("not sspr_capable", &u));
        assert!(!holds("sspr_capable == true", &u));
        assert!(parse("not sspr_capable").unwrap().reads_registration());
        assert!(
            parse("has_mobile or (department == 'x' and has_authenticator)")
                .unwrap()
                .reads_registration()
        );
        assert!(!parse("has_mobile and synced").unwrap().reads_registration());
        let e = err("has_mobile and sspr_capabel");
        assert_eq!((e.offset, e.len), (15, 12));
        assert!(
            e.message.contains("unknown attribute `sspr_capabel`"),
            "{}",
            e.message
        );
    }

    fn holds(expr: &str, u: &UserFacts<'_>) -> bool {
        parse(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .eval(u)
    }

    fn err(expr: &str) -> ConditionError {
        parse(expr).expect_err(expr)
    }

    #[test]
    fn flags() {
        let u = user();
        assert!(holds("has_mobile", &u));
        assert!(!holds("not has_mobile", &u));
        assert!(holds("not synced", &u));
        assert!(holds("synced == false", &u));
        assert!(holds("account_enabled != false", &u));
    }

    #[test]
    fn text_comparisons_ignore_case() {
        let u = user();
        assert!(holds("department in ['Finance', 'HR']", &u));
        assert!(holds("department == 'finance'", &u));
        assert!(holds("department not in [\"HR\"]", &u));
        assert!(holds("job_title startswith 'Exec'", &u));
        assert!(holds("job_title contains 'assist'", &u));
        assert!(holds("upn endswith '@CONTOSO.com'", &u));
        assert!(!holds("department != 'Finance'", &u));
    }

    #[test]
    fn missing_text_equals_nothing() {
        let mut u = user();
        u.department = None;
        assert!(!holds("department == 'Finance'", &u));
        assert!(!holds("department in ['Finance']", &u));
        assert!(holds("department != 'Finance'", &u));
        assert!(holds("department not in ['Finance']", &u));
        assert!(!holds("department startswith 'F'", &u));
    }

    #[test]
    fn risk_levels_are_ordered() {
        let u = user();
        assert!(holds("risk_level >= medium", &u));
        assert!(holds("risk_level > low", &u));
        assert!(!holds("risk_level > medium", &u));
        assert!(holds("risk_level < 'high'", &u));
        assert!(holds("risk_level in [medium, high]", &u));
        assert!(holds("risk_level != none", &u));
        assert!(RiskLevel::None < RiskLevel::Low);
    }

    #[test]
    fn precedence_and_parentheses() {
        let mut u = user();
        u.has_mobile = false;
        // and binds tighter than or
        assert!(holds("synced or account_enabled and not has_mobile", &u));
        assert!(!holds("(synced or account_enabled) and has_mobile", &u));
        assert!(holds("not (synced or has_mobile)", &u));
        assert_eq!(
            parse("a_b").unwrap_err().message,
            "unknown attribute `a_b`: expected one of upn, department, job_title, has_mobile, synced, account_enabled, sspr_capable, has_authenticator, risk_level"
        );
    }

    #[test]
    fn unknown_attribute_points_at_it() {
        let e = err("has_mobile and departement == 'HR'");
        assert_eq!((e.offset, e.len), (15, 11));
        assert!(
            e.message.contains("unknown attribute `departement`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn wrong_operator_for_type() {
        let e = err("department >= 'HR'");
        assert_eq!(e.offset, 11);
        assert!(
            e.message
                .contains("does not apply to text attribute `department`")
        );
        let e = err("has_mobile in ['x']");
        assert_eq!(e.offset, 11);
        assert!(e.message.contains("true or false"));
        let e = err("risk_level startswith 'h'");
        assert_eq!(e.offset, 11);
        let e = err("department");
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("needs a comparison"));
    }

    #[test]
    fn bad_literals() {
        let e = err("risk_level >= mediun");
        assert_eq!((e.offset, e.len), (14, 6));
        assert!(e.message.contains("`mediun` is not a risk level"));
        let e = err("department == Finance");
        assert_eq!(e.offset, 14);
        assert!(e.message.contains("write 'Finance'"));
        let e = err("synced == yes");
        assert_eq!(e.offset, 10);
        let e = err("department in 'HR'");
        assert_eq!(e.offset, 14);
        let e = err("department in []");
        assert!(e.message.contains("empty list"));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(err("").offset, 0);
        let e = err("has_mobile and");
        assert_eq!(e.offset, 14);
        assert!(e.message.contains("unexpected end"));
        let e = err("(has_mobile");
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("unclosed `(`"));
        let e = err("has_mobile synced");
        assert_eq!(e.offset, 11);
        let e = err("department == 'HR");
        assert_eq!(e.offset, 14);
        assert!(e.message.contains("unterminated string"));
        let e = err("department = 'HR'");
        assert_eq!(e.offset, 11);
        assert!(e.message.contains("write `==`"));
        let e = err("!synced");
        assert_eq!(e.offset, 0);
        let e = err("department in ['a' 'b']");
        assert_eq!(e.offset, 19);
        let e = err("has_mobile && synced");
        assert_eq!(e.offset, 11);
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}has_mobile{}", "(".repeat(100), ")".repeat(100));
        let e = err(&deep);
        assert_eq!(e.offset, MAX_DEPTH);
        assert!(e.message.contains("nested too deeply"));
        let nots = format!("{}synced", "not ".repeat(100));
        assert!(err(&nots).message.contains("nested too deeply"));
        let long = vec!["synced"; 100_000].join(" and ");
        assert!(err(&long).message.contains("condition too long"));
        let ok = format!("{}has_mobile{}", "(".repeat(20), ")".repeat(20));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn mutual_exclusion_is_syntactic() {
        let a = parse("has_mobile").unwrap();
        let b = parse("not has_mobile").unwrap();
        let c = parse("has_mobile == false").unwrap();
        let d = parse("synced").unwrap();
        assert!(a.excludes(&b) && b.excludes(&a));
        assert!(a.excludes(&c));
        assert!(!a.excludes(&d));
        let e = parse("department in ['HR'] and synced").unwrap();
        let f = parse("not (department in ['HR'] and synced)").unwrap();
        assert!(e.excludes(&f));
    }
}
