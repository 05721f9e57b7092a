//! A deterministic synthetic tenant from a seed and a size: the shape an MSP customer's
//! directory has (managers, phones, departments, synced users, break-glass and service
//! accounts, admins active and PIM-eligible, groups, authentication methods, risky users).
//!
//! The same `(seed, users, missing_mobile, apps)` gives the same tenant, byte for byte, so
//! tests and tabletop reports are reproducible. 1,000,000 users seed in a few seconds.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::model::{
    App, Eligibility, Group, MethodKind, NONE, Principal, Risk, RoleAssignment, Tenant, User, roles,
};

/// What the seed needs to know.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// Seed of the random generator.
    pub seed: u64,
    /// Number of users (clamped to 10..=1,000,000).
    pub users: u32,
    /// Fraction of users without a mobile phone.
    pub missing_mobile: f64,
    /// Number of app registrations.
    pub apps: u32,
}

/// The local part of the seeded shared mailbox notices are sent from
/// (`incident-noreply@` the verified domain): disabled, never a person.
pub const SENDER_MAILBOX_LOCAL: &str = "incident-noreply";

/// The object id of the seeded "SOC Incident Response Accounts" group (`ransomware.yaml`
/// excludes its members).
pub const SOC_GROUP_ID: u128 = 0x5b3f9c1e_2d47_4a8b_9f60_1c2e3d4a5b6c;
/// The object id of the seeded "MFA registration from any location" group (`mfa-reset.yaml`
/// adds users to it for 24 hours).
pub const MFA_REGISTRATION_GROUP_ID: u128 = 0x7c1d2e3f_4a5b_4c6d_8e9f_0a1b2c3d4e5f;

/// Seeds of the generators beside the main one (XORed with the tenant seed).
const LOOK_STREAM: u64 = 0x1a9e_0b0e;
const MAILBOX_STREAM: u64 = 0x3a11_b0c5;

/// A seeded user's `preferredLanguage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Language {
    EnUs,
    DeDe,
    None,
}

/// Most users `en-US`, some `de-DE`, some never set (null).
fn pick_language(rng: &mut ChaCha8Rng) -> Language {
    match rng.random_range(0..100) {
        0..80 => Language::EnUs,
        80..92 => Language::DeDe,
        _ => Language::None,
    }
}

/// A mobile number written the way directories hold them: E.164, E.164 with spaces,
/// national formats with brackets and dashes, German numbers for German speakers, and a
/// few entries no parser can read. Always one draw from `rng`, so the stream stays aligned.
fn mobile_shape(rng: &mut ChaCha8Rng, language: Language, area: u32, line: u32) -> String {
    let draw = rng.random_range(0..1000u32);
    if draw < 30 {
        return ["n/a", "ext 4411", "-", "call reception"][draw as usize % 4].to_string();
    }
    if language == Language::DeDe {
        let prefix = [151, 152, 160, 170, 171, 176][draw as usize % 6];
        return format!("+49 {prefix} {area:03}{line:05}");
    }
    match draw % 5 {
        0 | 1 => format!("+1 {area} 555 {line:04}"),
        2 => format!("+1{area}555{line:04}"),
        3 => format!("({area}) 555-{line:04}"),
        _ => format!("+1 ({area}) 555-{line:04}"),
    }
}

/// The verified custom domain of seeded tenants.
pub const VERIFIED_DOMAIN: &str = "northwind-demo.com";
/// The initial `onmicrosoft.com` domain of seeded tenants.
pub const INITIAL_DOMAIN: &str = "northwinddemo.onmicrosoft.com";

const GIVEN: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Dorothy",
    "George",
    "Melissa",
    "Timothy",
    "Deborah",
    "Ronald",
    "Stephanie",
    "Edward",
    "Rebecca",
    "Jason",
    "Sharon",
    "Jeffrey",
    "Laura",
    "Ryan",
    "Cynthia",
    "Jacob",
    "Kathleen",
    "Gary",
    "Amy",
    "Nicholas",
    "Angela",
    "Eric",
    "Shirley",
    "Jonathan",
    "Anna",
    "Stephen",
    "Brenda",
    "Larry",
    "Pamela",
    "Justin",
    "Emma",
    "Scott",
    "Nicole",
    "Brandon",
    "Helen",
    "Benjamin",
    "Samantha",
    "Samuel",
    "Katherine",
    "Gregory",
    "Christine",
    "Alexander",
    "Debra",
    "Patrick",
    "Rachel",
    "Frank",
    "Carolyn",
    "Raymond",
    "Janet",
    "Jack",
    "Catherine",
    "Dennis",
    "Maria",
    "Jerry",
    "Heather",
    "Tyler",
    "Diane",
    "Aaron",
    "Ruth",
    "Jose",
    "Julie",
    "Adam",
    "Olivia",
    "Nathan",
    "Joyce",
    "Henry",
    "Virginia",
    "Zachary",
    "Victoria",
    "Priya",
    "Wei",
    "Aisha",
    "Mateo",
    "Yuki",
    "Fatima",
    "Lars",
    "Ingrid",
    "Kwame",
    "Sofia",
    "Diego",
    "Mei",
];

const SURNAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
    "Rogers",
    "Gutierrez",
    "Ortiz",
    "Morgan",
    "Cooper",
    "Peterson",
    "Bailey",
    "Reed",
    "Kelly",
    "Howard",
    "Ramos",
    "Kim",
    "Cox",
    "Ward",
    "Richardson",
    "Watson",
    "Brooks",
    "Chavez",
    "Wood",
    "James",
    "Bennett",
    "Gray",
    "Mendoza",
    "Ruiz",
    "Hughes",
    "Price",
    "Alvarez",
    "Castillo",
    "Sanders",
    "Patel",
    "Myers",
    "Long",
    "Ross",
    "Foster",
    "Jimenez",
    "Powell",
    "Jenkins",
    "Perry",
    "Russell",
    "Sullivan",
    "Bell",
    "Coleman",
    "Butler",
    "Henderson",
    "Barnes",
    "Fischer",
    "Novak",
    "Okafor",
    "Tanaka",
    "Larsen",
    "Kowalski",
    "Dubois",
    "Rossi",
    "Haddad",
    "Singh",
    "Chen",
    "Wang",
    "Ivanova",
    "Schmidt",
    "Silva",
];

/// Departments and their job titles.
const DEPARTMENTS: &[(&str, &[&str])] = &[
    (
        "Finance",
        &[
            "Accountant",
            "Financial Analyst",
            "Controller",
            "Accounts Payable Specialist",
        ],
    ),
    (
        "Sales",
        &[
            "Account Executive",
            "Sales Representative",
            "Sales Manager",
            "Sales Engineer",
        ],
    ),
    (
        "Marketing",
        &[
            "Marketing Specialist",
            "Content Strategist",
            "Brand Manager",
            "SEO Analyst",
        ],
    ),
    (
        "Engineering",
        &[
            "Software Engineer",
            "Senior Software Engineer",
            "QA Engineer",
            "Engineering Manager",
        ],
    ),
    (
        "IT",
        &[
            "Systems Administrator",
            "Service Desk Analyst",
            "Network Engineer",
            "IT Manager",
        ],
    ),
    (
        "Human Resources",
        &[
            "HR Generalist",
            "Recruiter",
            "HR Business Partner",
            "Payroll Specialist",
        ],
    ),
    (
        "Operations",
        &[
            "Operations Coordinator",
            "Logistics Planner",
            "Operations Manager",
            "Buyer",
        ],
    ),
    (
        "Legal",
        &[
            "Paralegal",
            "Corporate Counsel",
            "Compliance Officer",
            "Contracts Manager",
        ],
    ),
    (
        "Customer Support",
        &[
            "Support Agent",
            "Support Team Lead",
            "Customer Success Manager",
            "Escalation Engineer",
        ],
    ),
    (
        "Research",
        &[
            "Research Scientist",
            "Lab Technician",
            "Data Scientist",
            "Research Director",
        ],
    ),
    (
        "Facilities",
        &[
            "Facilities Coordinator",
            "Maintenance Technician",
            "Facilities Manager",
            "Receptionist",
        ],
    ),
    (
        "Security",
        &[
            "Security Analyst",
            "SOC Engineer",
            "Security Architect",
            "CISO Office Lead",
        ],
    ),
];

const OFFICES: &[&str] = &[
    "Seattle HQ",
    "Chicago",
    "Austin",
    "London",
    "Dublin",
    "Berlin",
    "Singapore",
    "Remote",
];

const RISK_LEVELS: [&str; 3] = ["low", "medium", "high"];

/// A random v4-shaped UUID from the seeded generator.
fn uuid(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// An app secret in Entra's shape: 40 characters with a `~` in third place.
pub fn app_secret(rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let mut s: String = (0..3)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    s.push('~');
    s.extend((0..36).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char));
    s
}

/// Seeded app registrations, each holding User Administrator (see the module doc of
/// `emulator`: least privilege that lets a normal mass reset of non-admins pass and keeps
/// admins out of reach).
pub fn apps(rng: &mut ChaCha8Rng, count: u32) -> Vec<App> {
    (0..count.max(1))
        .map(|i| App {
            client_id: uuid(rng),
            display_name: format!("resetctl-runner-{:02}", i + 1),
            secret: app_secret(rng),
            certificates: Vec::new(),
            role: roles::USER_ADMIN,
            permissions: super::permissions::default_set(),
        })
        .collect()
}

/// Build the seeded tenant.
pub fn generate(spec: &SeedSpec) -> Tenant {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let n = spec.users.clamp(10, 1_000_000);
    let mut t = Tenant {
        tenant_id: uuid(&mut rng),
        verified_domain: VERIFIED_DOMAIN.to_string(),
        initial_domain: INITIAL_DOMAIN.to_string(),
        ..Tenant::default()
    };
    let verified = t.strings.intern(VERIFIED_DOMAIN);
    let initial = t.strings.intern(INITIAL_DOMAIN);
    let given: Vec<u32> = GIVEN.iter().map(|g| t.strings.intern(g)).collect();
    let surnames: Vec<u32> = SURNAMES.iter().map(|s| t.strings.intern(s)).collect();
    let depts: Vec<(u32, Vec<u32>)> = DEPARTMENTS
        .iter()
        .map(|(d, titles)| {
            (
                t.strings.intern(d),
                titles.iter().map(|x| t.strings.intern(x)).collect(),
            )
        })
        .collect();
    let offices: Vec<u32> = OFFICES.iter().map(|o| t.strings.intern(o)).collect();
    let now_s = jiff::Timestamp::now().as_second();
    let base_s = now_s - 6 * 365 * 86_400;
    let mut look = ChaCha8Rng::seed_from_u64(spec.seed ^ LOOK_STREAM);
    let en_us = t.strings.intern("en-US");
    let de_de = t.strings.intern("de-DE");

    // Two break-glass accounts and a few service accounts sit at the end of the user list.
    let service_count = (3 + n / 1000).min(n / 4);
    let special = 2 + service_count;
    let people = n - special;
    let mut name_counts: HashMap<(u32, u32), u32> = HashMap::new();
    t.users.reserve_exact(n as usize);
    let ceo_title = t.strings.intern("Chief Executive Officer");
    for i in 0..people {
        let g = given[rng.random_range(0..given.len())];
        let s = surnames[rng.random_range(0..surnames.len())];
        let count = name_counts.entry((g, s)).or_insert(0);
        *count += 1;
        let local = if *count == 1 {
            format!("{}.{}", t.strings.get(g), t.strings.get(s)).to_lowercase()
        } else {
            format!("{}.{}{}", t.strings.get(g), t.strings.get(s), count).to_lowercase()
        };
        let (dept, titles) = &depts[rng.random_range(0..depts.len())];
        let title = if i == 0 {
            ceo_title
        } else {
            titles[rng.random_range(0..titles.len())]
        };
        // The main generator draws exactly what it always drew (so the same seed gives the
        // same people, buckets and admins); language and the phone's written shape come from
        // a generator of their own.
        let language = pick_language(&mut look);
        let mobile = (!rng.random_bool(spec.missing_mobile.clamp(0.0, 1.0))).then(|| {
            let area = 200 + rng.random_range(0..700);
            let line = rng.random_range(0..10_000);
            mobile_shape(&mut look, language, area, line).into_boxed_str()
        });
        let language = match language {
            Language::None => NONE,
            Language::EnUs => en_us,
            Language::DeDe => de_de,
        };
        let business = rng
            .random_bool(0.7)
            .then(|| format!("+1 425 555 {:04}", rng.random_range(0..10_000)).into_boxed_str());
        let synced = rng.random_bool(0.10);
        let created = base_s + rng.random_range(0..5 * 365 * 86_400);
        let pw_changed = (created + rng.random_range(0..365 * 86_400)).min(now_s) * 1000;
        // Methods: most users have the Authenticator app, about half a phone, a few keys.
        let mut methods = 0u8;
        if !rng.random_bool(0.08) {
            if rng.random_bool(0.65) {
                methods |= MethodKind::Authenticator.bit();
            }
            if mobile.is_some() && rng.random_bool(0.5) {
                methods |= MethodKind::Phone.bit();
            }
            if rng.random_bool(0.08) {
                methods |= MethodKind::Fido2.bit();
            }
            if rng.random_bool(0.07) {
                methods |= MethodKind::SoftwareOath.bit();
            }
            if rng.random_bool(0.2) {
                methods |= MethodKind::Email.bit();
            }
            if rng.random_bool(0.1) {
                methods |= MethodKind::WindowsHello.bit();
            }
        }
        t.users.push(User {
            id: uuid(&mut rng),
            upn_local: local.into_boxed_str(),
            mobile,
            business_phone: business,
            tap: None,
            created_s: created,
            password_changed_ms: pw_changed,
            sessions_valid_ms: pw_changed,
            domain: verified,
            given: g,
            surname: s,
            display: NONE,
            department: *dept,
            job_title: title,
            office: offices[rng.random_range(0..offices.len())],
            preferred_language: language,
            // An 8-ary management tree: every person but the CEO has a manager.
            manager: if i == 0 { NONE } else { (i - 1) / 8 },
            methods,
            enabled: i == 0 || !rng.random_bool(0.03),
            synced,
            service: false,
            force_change: false,
            force_change_mfa: false,
            password_sets: 0,
        });
    }
    let it_dept = t.strings.intern("IT");
    let svc_title = t.strings.intern("Service Account");
    let bg_title = t.strings.intern("Emergency Access Account");
    let t_shared = t.strings.intern("Shared mailbox");
    let push_special = |t: &mut Tenant,
                        rng: &mut ChaCha8Rng,
                        local: String,
                        display: &str,
                        title: u32,
                        methods: u8,
                        service: bool| {
        let display = t.strings.intern(display);
        let created = base_s + rng.random_range(0..365 * 86_400);
        t.users.push(User {
            id: uuid(rng),
            upn_local: local.into_boxed_str(),
            mobile: None,
            business_phone: None,
            tap: None,
            created_s: created,
            password_changed_ms: created * 1000,
            sessions_valid_ms: created * 1000,
            domain: initial,
            given: NONE,
            surname: NONE,
            display,
            department: it_dept,
            job_title: title,
            office: NONE,
            preferred_language: NONE,
            manager: 0,
            methods,
            enabled: true,
            synced: false,
            service,
            force_change: false,
            force_change_mfa: false,
            password_sets: 0,
        });
    };
    for b in 1..=2 {
        push_special(
            &mut t,
            &mut rng,
            format!("bg-{b:02}"),
            &format!("Break Glass {b:02}"),
            bg_title,
            MethodKind::Fido2.bit(),
            false,
        );
    }
    let svc_names = ["svc-backup", "svc-scanner", "svc-sync"];
    for s in 0..service_count {
        let local = match svc_names.get(s as usize) {
            Some(name) => (*name).to_string(),
            None => format!("svc-app-{:04}", s + 1),
        };
        let display = format!("Service account {local}");
        push_special(&mut t, &mut rng, local, &display, svc_title, 0, true);
    }
    // The shared mailbox notices are sent from, last of all and from its own generator so
    // that every other user stays as it was. Exchange Online blocks sign-in for a shared
    // mailbox's account (<https://learn.microsoft.com/exchange/collaboration-exo/shared-mailboxes>):
    // it is disabled, on the verified domain, and has a mail address.
    let mut mailbox_rng = ChaCha8Rng::seed_from_u64(spec.seed ^ MAILBOX_STREAM);
    push_special(
        &mut t,
        &mut mailbox_rng,
        SENDER_MAILBOX_LOCAL.to_string(),
        "Incident notifications (no reply)",
        t_shared,
        0,
        false,
    );
    let mailbox = t.users.len() - 1;
    t.users[mailbox].domain = verified;
    t.users[mailbox].enabled = false;
    t.reindex();

    // Roles. Break-glass accounts are Global Administrators.
    let assignment = |t: &mut Tenant, rng: &mut ChaCha8Rng, role: &'static str, p: Principal| {
        let id = format!("{}-{}", uuid(rng).simple(), t.assignments.len());
        t.assignments.push(RoleAssignment {
            id,
            role,
            principal: p,
        });
    };
    assignment(
        &mut t,
        &mut rng,
        roles::GLOBAL_ADMIN,
        Principal::User(people),
    );
    assignment(
        &mut t,
        &mut rng,
        roles::GLOBAL_ADMIN,
        Principal::User(people + 1),
    );
    // ~2% active admins, spread over the critical roles (Global Admin rare).
    let admin_count = (people / 50).max(2);
    let mut admins = Vec::new();
    for k in 0..admin_count {
        let u = rng.random_range(1..people);
        let role = if k < 2 {
            roles::GLOBAL_ADMIN
        } else {
            roles::CRITICAL[rng.random_range(1..roles::CRITICAL.len())]
        };
        admins.push(u);
        t.users[u as usize].methods |= MethodKind::Fido2.bit() | MethodKind::Authenticator.bit();
        assignment(&mut t, &mut rng, role, Principal::User(u));
    }
    // ~1% PIM-eligible admins.
    let eligible_count = (people / 100).max(1);
    for _ in 0..eligible_count {
        let u = rng.random_range(1..people);
        let role = roles::CRITICAL[rng.random_range(0..roles::CRITICAL.len())];
        let id = format!("{}-{}", uuid(&mut rng).simple(), t.eligibilities.len());
        t.eligibilities.push(Eligibility {
            id,
            role,
            principal: Principal::User(u),
            start_s: now_s - rng.random_range(0..365 * 86_400),
        });
    }

    // Groups: one role-assignable group holding Privileged Role Administrator, one group per
    // department, the service accounts, and an empty CA-exclusion group for temporary use.
    let tier0: Vec<u32> = (0..4.min(people - 1))
        .map(|_| rng.random_range(1..people))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let new_group = |t: &mut Tenant,
                     rng: &mut ChaCha8Rng,
                     name: &str,
                     desc: &str,
                     role_assignable: bool,
                     members: Vec<u32>| {
        let nick: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        t.groups.push(Group {
            id: uuid(rng),
            display_name: name.to_string(),
            description: desc.to_string(),
            mail_nickname: nick,
            role_assignable,
            members,
            member_groups: Vec::new(),
        });
        (t.groups.len() - 1) as u32
    };
    let tier0_group = new_group(
        &mut t,
        &mut rng,
        "Tier0 Identity Admins",
        "Role-assignable group holding Privileged Role Administrator",
        true,
        tier0,
    );
    assignment(
        &mut t,
        &mut rng,
        roles::PRIVILEGED_ROLE_ADMIN,
        Principal::Group(tier0_group),
    );
    let mut by_dept: HashMap<u32, Vec<u32>> = HashMap::new();
    for (i, u) in t.users.iter().enumerate().take(people as usize) {
        by_dept.entry(u.department).or_default().push(i as u32);
    }
    let mut dept_groups = Vec::new();
    for (dept, _) in &depts {
        let members = by_dept.remove(dept).unwrap_or_default();
        let name = format!("All {}", t.strings.get(*dept));
        let desc = format!("Everyone in {}", t.strings.get(*dept));
        dept_groups.push(new_group(&mut t, &mut rng, &name, &desc, false, members));
    }
    let all_staff = new_group(
        &mut t,
        &mut rng,
        "All Staff",
        "Every department (nested groups)",
        false,
        Vec::new(),
    );
    t.groups[all_staff as usize].member_groups = dept_groups;
    let svc_members: Vec<u32> = (people + 2..n).collect();
    new_group(
        &mut t,
        &mut rng,
        "Service Accounts",
        "Non-interactive service accounts",
        false,
        svc_members,
    );
    new_group(
        &mut t,
        &mut rng,
        "Break Glass Accounts",
        "Emergency access accounts",
        false,
        vec![people, people + 1],
    );
    new_group(
        &mut t,
        &mut rng,
        "CA Exclusion - Temporary",
        "Temporary Conditional Access exclusion during incident response",
        false,
        Vec::new(),
    );
    let _ = admins;
    // The groups the shipped playbooks name by id, with those ids (no draw from `rng`, so
    // every other object stays as it was): the SOC's incident accounts, which
    // `ransomware.yaml` keeps usable, and the Conditional Access exclusion "MFA
    // registration from any location" that `mfa-reset.yaml` adds a user to for 24 hours.
    let security = t.strings.intern("Security");
    let soc: Vec<u32> = (1..people)
        .filter(|&i| {
            let u = &t.users[i as usize];
            u.department == security && u.enabled && t.active_roles(i).is_empty()
        })
        .take(4)
        .collect();
    for (id, name, desc, members) in [
        (
            SOC_GROUP_ID,
            "SOC Incident Response Accounts",
            "The security operations team's accounts; excluded from tenant-wide resets",
            soc,
        ),
        (
            MFA_REGISTRATION_GROUP_ID,
            "MFA registration from any location",
            "Conditional Access exclusion: members may register MFA methods from anywhere",
            Vec::new(),
        ),
    ] {
        let nick: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        t.groups.push(Group {
            id: Uuid::from_u128(id),
            display_name: name.to_string(),
            description: desc.to_string(),
            mail_nickname: nick,
            role_assignable: false,
            members,
            member_groups: Vec::new(),
        });
    }

    // Risky users at every level (about 1.5 %), plus a few already remediated or dismissed.
    let risky_count = (people / 64).max(3);
    for k in 0..risky_count {
        let u = rng.random_range(1..people);
        let (level, state, detail) = match k % 8 {
            0..=2 => (RISK_LEVELS[0], "atRisk", "none"),
            3..=4 => (RISK_LEVELS[1], "atRisk", "none"),
            5 => (RISK_LEVELS[2], "atRisk", "none"),
            6 => (
                RISK_LEVELS[2],
                "confirmedCompromised",
                "adminConfirmedUserCompromised",
            ),
            _ => ("none", "remediated", "userPerformedSecuredPasswordChange"),
        };
        let updated_ms = (now_s - rng.random_range(0..30 * 86_400)) * 1000;
        t.risky.insert(
            u,
            Risk {
                level,
                state,
                detail,
                updated_ms,
            },
        );
    }

    t.apps = apps(&mut rng, spec.apps);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(users: u32) -> SeedSpec {
        SeedSpec {
            seed: 7,
            users,
            missing_mobile: 0.1,
            apps: 2,
        }
    }

    #[test]
    fn same_seed_same_tenant() {
        let a = generate(&spec(500));
        let b = generate(&spec(500));
        assert_eq!(a.tenant_id, b.tenant_id);
        assert_eq!(a.users.len(), 501, "500 and the shared mailbox");
        for i in 0..500u32 {
            assert_eq!(a.upn(i), b.upn(i));
            assert_eq!(a.users[i as usize].id, b.users[i as usize].id);
        }
        assert_eq!(a.apps[0].secret, b.apps[0].secret);
        let c = generate(&SeedSpec {
            seed: 8,
            ..spec(500)
        });
        assert_ne!(a.users[0].id, c.users[0].id);
    }

    #[test]
    fn tenant_has_the_promised_shape() {
        let t = generate(&spec(2000));
        let n = t.users.len();
        // Unique UPNs, lookups by id and UPN work.
        let mut upns: Vec<String> = (0..n as u32).map(|i| t.upn(i).to_lowercase()).collect();
        upns.sort();
        upns.dedup();
        assert_eq!(upns.len(), n);
        for i in [0u32, 17, 1999] {
            assert_eq!(t.find_user(&t.users[i as usize].id.to_string()), Some(i));
            assert_eq!(t.find_user(&t.upn(i).to_uppercase()), Some(i));
        }
        // Managers: exactly one user without.
        assert_eq!(t.users.iter().filter(|u| u.manager == NONE).count(), 1);
        let synced = t.users.iter().filter(|u| u.synced).count();
        assert!((100..=300).contains(&synced), "{synced}");
        let missing = t.users.iter().filter(|u| u.mobile.is_none()).count();
        assert!(missing > 100, "{missing}");
        assert!(t.users.iter().any(|u| !u.enabled));
        assert!(t.find_user("bg-01@northwinddemo.onmicrosoft.com").is_some());
        assert!(t.find_user("bg-02@northwinddemo.onmicrosoft.com").is_some());
        assert!(t.assignments.len() >= 40);
        assert!(!t.eligibilities.is_empty());
        assert!(t.groups.iter().any(|g| g.role_assignable));
        for level in ["low", "medium", "high"] {
            assert!(t.risky.values().any(|r| r.level == level));
        }
        assert!(t.users.iter().any(|u| u.methods == 0));
        assert_eq!(t.apps.len(), 2);
        // The groups the shipped playbooks name, by their ids.
        let soc = Uuid::from_u128(SOC_GROUP_ID);
        let soc = t.groups.iter().find(|g| g.id == soc).unwrap();
        assert_eq!(soc.members.len(), 4);
        assert!(soc.members.iter().all(|&i| t.active_roles(i).is_empty()));
        let mfa = Uuid::from_u128(MFA_REGISTRATION_GROUP_ID);
        let mfa = t.groups.iter().find(|g| g.id == mfa).unwrap();
        assert!(mfa.members.is_empty() && !mfa.role_assignable);
    }
}
