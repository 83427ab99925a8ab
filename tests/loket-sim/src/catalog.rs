//! Fixed vocabularies: Loket key/value metadata lists as simulated here, and the Dutch
//! word lists the generator draws from.
//!
//! Loket does not publish the absence metadata lists (they come from `.../metadata`
//! endpoints); the keys and texts below are the simulator's own, plausible choice.

/// Look up the text of a metadata key; unknown keys render as `"Onbekend"`.
pub fn value(list: &[(i32, &'static str)], key: i32) -> &'static str {
    list.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .unwrap_or("Onbekend")
}

pub fn has_key(list: &[(i32, &'static str)], key: i32) -> bool {
    list.iter().any(|(k, _)| *k == key)
}

pub const GENDER: &[(i32, &str)] = &[(1, "Man"), (2, "Vrouw")];
pub const PAYROLL_PERIOD_TYPE: &[(i32, &str)] = &[(1, "Maand"), (3, "4 weken"), (4, "Week")];
pub const DURATION_TYPE: &[(i32, &str)] = &[(1, "Onbepaalde tijd"), (2, "Bepaalde tijd")];
pub const GROSS_WAGE_TYPE: &[(i32, &str)] = &[(1, "Periodeloon"), (2, "Uurloon")];
pub const END_OF_EMPLOYMENT_REASON: &[(i32, &str)] = &[
    (1, "Ontslag op eigen verzoek"),
    (2, "Einde contract"),
    (3, "Ontslag door werkgever"),
];

/// Cause of absence: key 1 is illness, the others are "vangnet" types.
pub const CAUSE_OF_ABSENCE: &[(i32, &str)] = &[
    (1, "Ziekte"),
    (2, "Zwangerschap/bevalling (WAZO)"),
    (3, "Ziekte door zwangerschap"),
    (4, "Orgaandonatie"),
    (5, "Arbeidsongeval"),
];
/// The cause key used for maternity leave.
pub const CAUSE_MATERNITY: i32 = 2;
pub const EXPECTED_DURATION: &[(i32, &str)] = &[
    (1, "Korter dan 1 week"),
    (2, "1 tot 2 weken"),
    (3, "2 tot 6 weken"),
    (4, "Langer dan 6 weken"),
    (5, "Onbekend"),
];
pub const ACTION_BY_OHS: &[(i32, &str)] = &[
    (1, "Geen actie"),
    (2, "Spoedcontrole aan huis"),
    (3, "Contact opnemen met werknemer"),
    (4, "Oproepen voor spreekuur"),
];
pub const END_OF_ABSENCE_REASON: &[(i32, &str)] = &[
    (1, "Volledig hersteld"),
    (2, "Einde dienstverband"),
    (3, "Overleden"),
    (4, "Einde wachttijd"),
];
pub const TYPE_OF_WORK_RESUMPTION: &[(i32, &str)] = &[
    (1, "Eigen werk"),
    (2, "Eigen werk met aanpassing"),
    (3, "Ander werk"),
    (4, "Arbeidstherapeutisch"),
];

pub const COMPANY_FIRST: &[&str] = &[
    "Bakkerij",
    "Installatiebedrijf",
    "Transport",
    "Bouwbedrijf",
    "Drukkerij",
    "Zorggroep",
    "Techniek",
    "Handelsonderneming",
    "Adviesbureau",
    "Metaalbewerking",
    "Groothandel",
    "Schoonmaakbedrijf",
];
pub const COMPANY_SECOND: &[&str] = &[
    "De Molen",
    "Van Dijk",
    "Jansen",
    "De Vries",
    "Noord",
    "Het Anker",
    "De Eendracht",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "De Zwaan",
    "Horizon",
    "Kroon",
];

pub const STREETS: &[&str] = &[
    "Dorpsstraat",
    "Kerkstraat",
    "Stationsweg",
    "Molenweg",
    "Schoolstraat",
    "Hoofdstraat",
    "Julianalaan",
    "Beatrixstraat",
    "Nieuwstraat",
    "Industrieweg",
    "Vondellaan",
    "Lindelaan",
    "Voordijk",
    "Parallelweg",
    "Prinsengracht",
    "Wilhelminastraat",
];
pub const CITIES: &[&str] = &[
    "Amsterdam",
    "Rotterdam",
    "Utrecht",
    "Leiden",
    "Haarlem",
    "Zwolle",
    "Groningen",
    "Eindhoven",
    "Tilburg",
    "Almere",
    "Apeldoorn",
    "Enschede",
    "Amersfoort",
    "Den Bosch",
    "Maastricht",
    "Delft",
    "Alkmaar",
    "Leeuwarden",
];

pub const FIRST_NAMES_MALE: &[&str] = &[
    "Jan", "Pieter", "Kees", "Daan", "Sem", "Lucas", "Thomas", "Bram", "Ruben", "Mohamed",
    "Jeroen", "Mark", "Willem", "Erik", "Tim", "Stijn", "Joost", "Hendrik", "Ahmed", "Niels",
];
pub const FIRST_NAMES_FEMALE: &[&str] = &[
    "Anna", "Emma", "Sophie", "Julia", "Lisa", "Sanne", "Fleur", "Eva", "Anouk", "Fatima",
    "Marieke", "Ingrid", "Susan", "Lotte", "Noor", "Femke", "Johanna", "Iris", "Maria", "Yara",
];
pub const LAST_NAMES: &[&str] = &[
    "Jansen",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "Mulder",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "Dekker",
    "Brouwer",
    "Dijkstra",
    "Koster",
    "Willems",
    "Kok",
    "Jacobs",
    "Haan",
    "Schouten",
    "Vermeulen",
    "Yilmaz",
    "El Amrani",
    "Kuipers",
    "Postma",
];
/// Last names that usually come with a prefix, with that prefix.
pub const PREFIXED_LAST_NAMES: &[(&str, &str)] = &[
    ("de", "Vries"),
    ("de", "Jong"),
    ("van", "Dijk"),
    ("van", "Leeuwen"),
    ("van der", "Berg"),
    ("van der", "Linden"),
    ("van den", "Broek"),
    ("de", "Boer"),
    ("van", "Bergen"),
    ("ter", "Horst"),
];

/// Top-level departments with their sub-departments.
pub const DEPARTMENTS: &[(&str, &[&str])] = &[
    ("Verkoop", &["Binnendienst", "Buitendienst"]),
    ("Productie", &["Ploeg A", "Ploeg B", "Kwaliteit"]),
    ("Administratie", &["Crediteuren", "Debiteuren"]),
    ("Logistiek", &["Magazijn", "Expeditie"]),
    ("ICT", &[]),
    ("Personeelszaken", &[]),
    ("Klantenservice", &[]),
];

pub const FUNCTIONS: &[(&str, Option<&str>)] = &[
    ("Medewerker binnendienst", Some("B")),
    ("Accountmanager", Some("D")),
    ("Productiemedewerker", Some("B")),
    ("Teamleider", Some("E")),
    ("Administratief medewerker", Some("C")),
    ("Magazijnmedewerker", Some("A")),
    ("Monteur", Some("C")),
    ("Controller", Some("F")),
    ("HR-adviseur", Some("E")),
    ("Planner", None),
    ("Servicemedewerker", Some("B")),
    ("Applicatiebeheerder", Some("D")),
];

/// Sample absence comments (free text the agent must drop).
pub const ABSENCE_COMMENTS: &[&str] = &[
    "Griep, verwacht volgende week terug",
    "Rugklachten, fysiotherapie gestart",
    "Telefonisch ziek gemeld bij leidinggevende",
    "Overspannen; gesprek met bedrijfsarts gepland",
    "Na operatie knie, revalidatie",
];
