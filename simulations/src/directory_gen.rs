//! `imi-sim directory generate`: a realistic directory of competent authorities, 12,500 by
//! default (IMI's real size), across the 30 EEA countries, for the benchmarks and the
//! simulations.
//!
//! [`generate`] is deterministic: the same `(count, seed)` and the same vocabulary and
//! catalogue give the same authorities, byte for byte once written by [`to_toml`]. Each
//! country draws from its own ChaCha8 stream (the seed, stream = the country code), so a
//! country's authorities depend only on the seed and on how many it gets.
//!
//! * **Countries** get shares of the total roughly by population and IMI use (Germany,
//!   France, Italy, Spain and Poland largest; Liechtenstein, Iceland, Malta, Cyprus and
//!   Luxembourg smallest, still 25-55 each at 12,500), apportioned by largest remainder.
//! * **Places** come from a gazetteer (`directory_gen/places.txt`): the country's real
//!   first-level regions (Länder, régions, voivodeships, counties, kraje, ...) and real cities
//!   in them, named in the country's official languages and in English; Greek and Bulgarian
//!   names stay in their scripts. `city` and `region` are set on every record.
//! * **Levels**: about 3 % national, 42 % regional, 55 % local (small countries have no or
//!   few regional authorities). National authorities sit mostly in the capital, regional ones
//!   in their region's seat, local ones in any city.
//! * **Names** are built from per-language templates (`directory_gen/templates.txt`) in each
//!   of the country's languages plus English (`nl`/`fr`/`de` in Belgium, `fr`/`de` in
//!   Luxembourg, `fi`/`sv` in Finland, `ga` in Ireland, `mt` in Malta): a professional chamber
//!   named after a profession ("Landeskammer Bayern (Zahnarzt)"), a regional office or a
//!   municipality named after a competence ("Krajský úřad Jihomoravského kraje – ...",
//!   "Δήμος Θεσσαλονίκης – ..."), a national agency, a local office. Profession and
//!   competence words are the vocabulary's own names in that language.
//! * **Tags**: 1-6 profession codes (the one in the name first, then others of its sector;
//!   the professions of automatic recognition, doctors, nurses, dentists, ..., most often),
//!   1-4 competence codes (the one in the name first), legal areas that follow from the
//!   competences (recognition and licensing → `PQ`, posting of workers → `PW`, patients'
//!   rights → `PR`, ...) and for each area a non-empty subset of its procedures, all codes
//!   taken from the loaded vocabulary and catalogue only.
//! * **Ids** are `<CC>-G<nnnnn>`, numbered per country.
//!
//! [`to_toml`] writes the `[[authorities]]` format of `configs/directory/authorities.toml`,
//! which `imi_node::config::load_directory` reads.
use anyhow::{Context, Result, bail};
use imi_domain::catalogue::Catalogue;
use imi_domain::vocabulary::{Sector, Vocabulary};
use imi_domain::{Authority, Level};
use imi_protocol::NodeId;
use imi_protocol::ids::AuthorityId;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Instant;

/// IMI's real size: about 12,500 competent authorities.
pub const DEFAULT_COUNT: usize = 12_500;

const PLACES: &str = include_str!("directory_gen/places.txt");
const TEMPLATES: &str = include_str!("directory_gen/templates.txt");

/// Options of `imi-sim directory generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Number of authorities.
    #[arg(long, default_value_t = DEFAULT_COUNT)]
    pub count: usize,
    /// Seed of the generator: the same count and seed give the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The TOML file to write (`[[authorities]]`, the format of
    /// `configs/directory/authorities.toml`).
    #[arg(long)]
    pub out: PathBuf,
    /// The catalogue directory (default: the repository's `configs/catalogue`).
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// The vocabularies directory (default: the repository's `configs/vocabularies`).
    #[arg(long)]
    pub vocabularies: Option<PathBuf>,
}

/// The repository's `configs` directory.
pub fn repo_configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

/// Loads and validates the catalogue (`languages.toml`, `areas/*.toml`) and the vocabularies
/// (`professions.toml`, `competences.toml`) as the node does.
pub fn load_inputs(
    catalogue_dir: &Path,
    vocabularies_dir: &Path,
) -> Result<(Catalogue, Vocabulary)> {
    let catalogue = imi_apps::catalogue_files::load_dir(catalogue_dir)
        .with_context(|| format!("loading the catalogue {}", catalogue_dir.display()))?;
    let vocabulary = Vocabulary::load(
        vocabularies_dir,
        catalogue.languages(),
        &imi_apps::catalogue_files::Disk,
    )
    .with_context(|| format!("loading the vocabularies {}", vocabularies_dir.display()))?;
    Ok((catalogue, vocabulary))
}

/// `imi-sim directory generate`: writes the file, checks that the node's directory loader
/// reads it back, prints a line per country on stderr.
pub fn run(args: &GenerateArgs) -> Result<bool> {
    let configs = repo_configs();
    let catalogue_dir = args
        .catalogue
        .clone()
        .unwrap_or_else(|| configs.join("catalogue"));
    let vocabularies_dir = args
        .vocabularies
        .clone()
        .unwrap_or_else(|| configs.join("vocabularies"));
    let (catalogue, vocabulary) = load_inputs(&catalogue_dir, &vocabularies_dir)?;
    let started = Instant::now();
    let authorities = generate(args.count, args.seed, &vocabulary, &catalogue);
    let generated = started.elapsed();
    let text = to_toml(&authorities, args.seed);
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    let loaded = imi_node::config::load_directory(&args.out)?;
    if loaded.len() != authorities.len() {
        bail!(
            "{}: the node's loader read {} authorities, {} were written",
            args.out.display(),
            loaded.len(),
            authorities.len()
        );
    }
    for line in summary(&authorities) {
        eprintln!("{line}");
    }
    eprintln!(
        "{} authorities (seed {}) generated in {:.1} ms; wrote {} ({} bytes), read back by the \
         node's directory loader",
        authorities.len(),
        args.seed,
        generated.as_secs_f64() * 1000.0,
        args.out.display(),
        text.len()
    );
    Ok(true)
}

// --- The gazetteer and the templates ------------------------------------------------------

/// A place's name in one language: the nominative, and the form used after a noun where
/// the language needs one (see `templates.txt`).
#[derive(Debug)]
struct Form {
    nom: String,
    of: Option<String>,
}

#[derive(Debug)]
struct Place {
    /// One per language of the country.
    forms: Vec<Form>,
    en: String,
    /// The `city` / `region` field.
    field: String,
    weight: u32,
}

#[derive(Debug)]
struct Region {
    place: Place,
    /// The first is the region's seat.
    cities: Vec<Place>,
}

#[derive(Debug)]
struct Country {
    node: NodeId,
    name: String,
    langs: Vec<String>,
    weight: u64,
    /// National, regional, local shares.
    levels: [u32; 3],
    regions: Vec<Region>,
    /// (region, city) of the capital.
    capital: (usize, usize),
}

impl Country {
    fn cities(&self) -> impl Iterator<Item = ((usize, usize), &Place)> {
        self.regions.iter().enumerate().flat_map(|(r, region)| {
            region
                .cities
                .iter()
                .enumerate()
                .map(move |(c, city)| ((r, c), city))
        })
    }
}

/// The kinds of authority, each with its name template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// National authority named after a competence.
    NationalAgency,
    /// National chamber or register of a profession.
    NationalChamber,
    /// Regional chamber of a profession.
    RegionalChamber,
    /// Regional office named after a competence.
    RegionalOffice,
    /// Municipality, department named after a competence.
    Municipality,
    /// Local office of a profession.
    LocalOffice,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::NationalAgency,
        Kind::NationalChamber,
        Kind::RegionalChamber,
        Kind::RegionalOffice,
        Kind::Municipality,
        Kind::LocalOffice,
    ];

    /// Its position in [`Kind::ALL`].
    fn index(self) -> usize {
        self as usize
    }

    fn key(self) -> &'static str {
        match self {
            Kind::NationalAgency => "NA",
            Kind::NationalChamber => "NC",
            Kind::RegionalChamber => "RC",
            Kind::RegionalOffice => "RO",
            Kind::Municipality => "LM",
            Kind::LocalOffice => "LO",
        }
    }

    fn level(self) -> Level {
        match self {
            Kind::NationalAgency | Kind::NationalChamber => Level::National,
            Kind::RegionalChamber | Kind::RegionalOffice => Level::Regional,
            Kind::Municipality | Kind::LocalOffice => Level::Local,
        }
    }

    /// Named after a profession (else after a competence).
    fn professional(self) -> bool {
        matches!(
            self,
            Kind::NationalChamber | Kind::RegionalChamber | Kind::LocalOffice
        )
    }
}

const PLACEHOLDERS: [&str; 8] = ["c", "cg", "r", "rg", "p", "pl", "k", "kl"];

#[derive(Debug)]
struct Gazetteer {
    /// In node-code order.
    countries: Vec<Country>,
    /// (`lang` or `lang@CC`, kind) -> template.
    templates: HashMap<(String, Kind), String>,
}

impl Gazetteer {
    fn parse(places: &str, templates: &str) -> Result<Gazetteer, String> {
        let mut countries = parse_places(places)?;
        countries.sort_by_key(|c| c.node);
        let mut map = HashMap::new();
        for (n, line) in templates.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |what: &str| format!("templates.txt:{}: {what}: {line}", n + 1);
            let mut parts = line.splitn(3, ' ');
            let (Some(lang), Some(kind), Some(text)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(err("expected `lang KIND template`"));
            };
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.key() == kind)
                .ok_or_else(|| err("unknown kind"))?;
            check_template(text).map_err(|e| err(&e))?;
            if map
                .insert((lang.to_owned(), kind), text.to_owned())
                .is_some()
            {
                return Err(err("template given twice"));
            }
        }
        let g = Gazetteer {
            countries,
            templates: map,
        };
        for country in &g.countries {
            for lang in country.langs.iter().map(String::as_str).chain(["en"]) {
                for kind in Kind::ALL {
                    if g.template(lang, country.node, kind).is_none() {
                        return Err(format!(
                            "templates.txt: no {} template for {lang} ({})",
                            kind.key(),
                            country.node.as_str()
                        ));
                    }
                }
            }
        }
        Ok(g)
    }

    fn template(&self, lang: &str, node: NodeId, kind: Kind) -> Option<&str> {
        self.templates
            .get(&(format!("{lang}@{}", node.as_str()), kind))
            .or_else(|| self.templates.get(&(lang.to_owned(), kind)))
            .map(String::as_str)
    }

    fn country(&self, node: NodeId) -> Option<&Country> {
        self.countries.iter().find(|c| c.node == node)
    }
}

fn check_template(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("unclosed '{'")?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder {{{name}}}"));
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("stray '}'".into());
    }
    Ok(())
}

fn parse_places(text: &str) -> Result<Vec<Country>, String> {
    let mut countries: Vec<Country> = Vec::new();
    let mut capital: Option<(usize, usize)> = None;
    let mut field_en = false;
    let finish = |country: &mut Country, capital: Option<(usize, usize)>| {
        let code = country.node.as_str();
        country.capital = capital.ok_or(format!("places.txt: {code} has no capital (K)"))?;
        if let Some(r) = country.regions.iter().find(|r| r.cities.is_empty()) {
            return Err(format!(
                "places.txt: {code}: region {} has no city",
                r.place.en
            ));
        }
        Ok::<(), String>(())
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |what: &str| format!("places.txt:{}: {what}: {line}", n + 1);
        let (tag, rest) = line.split_once(' ').ok_or_else(|| err("no content"))?;
        match tag {
            "@" => {
                if let Some(prev) = countries.last_mut() {
                    finish(prev, capital.take())?;
                }
                let tokens: Vec<&str> = rest.split_whitespace().collect();
                let [code, name, langs, weight, levels, options @ ..] = tokens.as_slice() else {
                    return Err(err("expected `@ CC Name langs weight levels`"));
                };
                let node: NodeId = code.parse().map_err(|_| err("unknown node"))?;
                if node == NodeId::EU || countries.iter().any(|c| c.node == node) {
                    return Err(err("not a member state, or listed twice"));
                }
                let levels: Vec<u32> = levels
                    .split('/')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| err("bad levels"))?;
                let levels: [u32; 3] = levels.try_into().map_err(|_| err("three levels"))?;
                field_en = match options {
                    [] => false,
                    ["fields=en"] => true,
                    _ => return Err(err("unknown option")),
                };
                countries.push(Country {
                    node,
                    name: (*name).to_owned(),
                    langs: langs.split(',').map(str::to_owned).collect(),
                    weight: weight.parse().map_err(|_| err("bad weight"))?,
                    levels,
                    regions: Vec::new(),
                    capital: (0, 0),
                });
            }
            "R" | "C" | "K" => {
                let country = countries
                    .last_mut()
                    .ok_or_else(|| err("before any country"))?;
                let place =
                    parse_place(rest, country.langs.len(), field_en).map_err(|e| err(&e))?;
                if tag == "R" {
                    country.regions.push(Region {
                        place,
                        cities: Vec::new(),
                    });
                } else {
                    let r = country.regions.len().checked_sub(1);
                    let region = r
                        .and_then(|r| country.regions.get_mut(r))
                        .ok_or_else(|| err("city before any region"))?;
                    region.cities.push(place);
                    if tag == "K" {
                        if capital.is_some() {
                            return Err(err("second capital"));
                        }
                        capital = r.map(|r| (r, region.cities.len() - 1));
                    }
                }
            }
            _ => return Err(err("unknown line")),
        }
    }
    if let Some(last) = countries.last_mut() {
        finish(last, capital)?;
    }
    Ok(countries)
}

fn parse_place(text: &str, langs: usize, field_en: bool) -> Result<Place, String> {
    let (text, weight) = match text.rsplit_once(" *") {
        Some((t, w)) if w.bytes().all(|b| b.is_ascii_digit()) => {
            (t, w.parse().map_err(|_| "bad weight")?)
        }
        _ => (text, 1),
    };
    let (local, en) = match text.split_once(" = ") {
        Some((l, e)) => (l.trim(), Some(e.trim())),
        None => (text.trim(), None),
    };
    let mut parts: Vec<&str> = local.split(" ; ").map(str::trim).collect();
    if parts.len() == 1 {
        parts = vec![local; langs];
    }
    if parts.len() != langs {
        return Err(format!("{} names for {langs} languages", parts.len()));
    }
    let mut primary = 0;
    let mut forms = Vec::with_capacity(langs);
    for (i, part) in parts.into_iter().enumerate() {
        let part = match part.strip_prefix('^') {
            Some(p) => {
                primary = i;
                p
            }
            None => part,
        };
        let (nom, of) = match part.split_once('|') {
            Some((nom, of)) => (nom, Some(of.to_owned())),
            None => (part, None),
        };
        if nom.is_empty() || of.as_ref().is_some_and(String::is_empty) {
            return Err("empty name".into());
        }
        forms.push(Form {
            nom: nom.to_owned(),
            of,
        });
    }
    let nominative = forms
        .get(primary)
        .map(|f| f.nom.clone())
        .unwrap_or_default();
    let en = en.map_or_else(|| nominative.clone(), str::to_owned);
    Ok(Place {
        field: if field_en { en.clone() } else { nominative },
        forms,
        en,
        weight,
    })
}

static GAZETTEER: LazyLock<Gazetteer> = LazyLock::new(|| {
    Gazetteer::parse(PLACES, TEMPLATES).unwrap_or_else(|e| panic!("built-in gazetteer: {e}"))
});

/// The place's name in a country language (by index) or in English (`None`): nominative and
/// the form after a noun.
fn place_name(place: &Place, lang: &str, index: Option<usize>) -> (String, String) {
    let Some(form) = index.and_then(|i| place.forms.get(i)) else {
        return (place.en.clone(), english_of_form(&place.en));
    };
    let of = form.of.clone().unwrap_or_else(|| match lang {
        "fr" if starts_with_vowel(&form.nom) => format!("d'{}", form.nom),
        "fr" | "es" | "pt" => format!("de {}", form.nom),
        "it" => format!("di {}", form.nom),
        _ => form.nom.clone(),
    });
    (form.nom.clone(), of)
}

/// "the Masovian Voivodeship", "the Capital Region of Denmark", "the Azores"; "Bavaria",
/// "County Cork", "Harju County" stay as they are.
fn english_of_form(name: &str) -> String {
    const PREFIXES: [&str; 4] = ["Canton of ", "City of ", "Community of ", "Region of "];
    const SUFFIXES: [&str; 8] = [
        " Area",
        " Community",
        " Country",
        " Islands",
        " Peninsula",
        " Region",
        " Valley",
        " Voivodeship",
    ];
    const NAMES: [&str; 3] = ["Azores", "Peloponnese", "Westfjords"];
    let article = PREFIXES.iter().any(|p| name.starts_with(p))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
        || name.contains(" Region of ")
        || NAMES.contains(&name);
    if article {
        format!("the {name}")
    } else {
        name.to_owned()
    }
}

fn starts_with_vowel(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| "AEIOUYÀÂÄÉÈÊËÎÏÔÖÙÛÜaeiouyàâäéèêëîïôöùûü".contains(c))
}

/// The first letter in lowercase, unless the word is an acronym.
fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(first), second) if !second.is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(s.chars().skip(1)).collect()
        }
        _ => s.to_owned(),
    }
}

fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').unwrap_or(after.len());
        let name = &after[..close];
        let value = vars.iter().find(|(k, _)| *k == name).map_or("", |(_, v)| v);
        out.push_str(value);
        rest = after.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

// --- Vocabulary and catalogue ---------------------------------------------------------------

/// The professions of automatic recognition (Directive 2005/36/EC, Title III Chapter III),
/// most of IMI's qualification exchanges.
const SECTORAL: [&str; 9] = [
    "PROF-DOCTOR",
    "PROF-GENERAL-PRACTITIONER",
    "PROF-MEDICAL-SPECIALIST",
    "PROF-NURSE",
    "PROF-DENTIST",
    "PROF-VETERINARY-SURGEON",
    "PROF-MIDWIFE",
    "PROF-PHARMACIST",
    "PROF-ARCHITECT",
];

/// Competences of a professional body, with weights.
const PROFESSION_COMPETENCES: [(&str, u32); 11] = [
    ("COMP-RECOGNITION-QUALIFICATIONS", 5),
    ("COMP-LICENSING", 5),
    ("COMP-DISCIPLINARY", 3),
    ("COMP-GOOD-STANDING", 3),
    ("COMP-DIPLOMA-VERIFICATION", 2),
    ("COMP-TEMPORARY-SERVICES", 2),
    ("COMP-PROFESSIONAL-BODIES", 2),
    ("COMP-EUROPEAN-PROFESSIONAL-CARD", 1),
    ("COMP-LANGUAGE-KNOWLEDGE", 1),
    ("COMP-LIABILITY-INSURANCE", 1),
    ("COMP-CRIMINAL-RECORDS", 1),
];

/// Alerts concern health professions and those working with minors (Art. 56a).
const ALERTS: &str = "COMP-PROFESSIONAL-ALERTS";

const REGIONAL_COMPETENCES: [(&str, u32); 16] = [
    ("COMP-RECOGNITION-QUALIFICATIONS", 4),
    ("COMP-LICENSING", 3),
    ("COMP-SERVICES-AUTHORISATION", 3),
    ("COMP-POSTING-WORKERS", 2),
    ("COMP-LABOUR-INSPECTION", 2),
    ("COMP-SOCIAL-SECURITY", 2),
    ("COMP-PATIENT-RIGHTS", 2),
    ("COMP-HEALTH-INSURANCE", 1),
    ("COMP-MARKET-SURVEILLANCE", 1),
    ("COMP-PRODUCT-SAFETY", 1),
    ("COMP-CONSUMER-PROTECTION", 1),
    ("COMP-FOOD-SAFETY", 1),
    ("COMP-ENVIRONMENTAL-PERMITS", 1),
    ("COMP-ROAD-TRANSPORT", 1),
    ("COMP-PROFESSIONAL-ALERTS", 1),
    ("COMP-CULTURAL-OBJECTS", 1),
];

const LOCAL_COMPETENCES: [(&str, u32); 12] = [
    ("COMP-SERVICES-AUTHORISATION", 4),
    ("COMP-BUSINESS-REGISTRATION", 4),
    ("COMP-LICENSING", 2),
    ("COMP-ENVIRONMENTAL-PERMITS", 2),
    ("COMP-FOOD-SAFETY", 2),
    ("COMP-CONSUMER-PROTECTION", 1),
    ("COMP-SOCIAL-SECURITY", 1),
    ("COMP-PUBLIC-PROCUREMENT", 1),
    ("COMP-TAX", 1),
    ("COMP-ROAD-TRANSPORT", 1),
    ("COMP-TEMPORARY-SERVICES", 1),
    ("COMP-LABOUR-INSPECTION", 1),
];

/// The legal areas (catalogue codes) a competence leads to.
fn areas_of(competence: &str) -> &'static [&'static str] {
    match competence {
        "COMP-RECOGNITION-QUALIFICATIONS"
        | "COMP-LICENSING"
        | "COMP-DISCIPLINARY"
        | "COMP-GOOD-STANDING"
        | "COMP-DIPLOMA-VERIFICATION"
        | "COMP-EUROPEAN-PROFESSIONAL-CARD"
        | "COMP-TEMPORARY-SERVICES"
        | "COMP-LANGUAGE-KNOWLEDGE"
        | "COMP-PROFESSIONAL-ALERTS"
        | "COMP-CRIMINAL-RECORDS"
        | "COMP-PROFESSIONAL-BODIES" => &["PQ"],
        "COMP-LIABILITY-INSURANCE" => &["PQ", "SD"],
        "COMP-SERVICES-AUTHORISATION"
        | "COMP-BUSINESS-REGISTRATION"
        | "COMP-MARKET-SURVEILLANCE"
        | "COMP-PRODUCT-SAFETY"
        | "COMP-TAX"
        | "COMP-DATA-PROTECTION"
        | "COMP-PUBLIC-PROCUREMENT"
        | "COMP-ENVIRONMENTAL-PERMITS"
        | "COMP-FOOD-SAFETY"
        | "COMP-ROAD-TRANSPORT" => &["SD"],
        "COMP-CONSUMER-PROTECTION" => &["SD", "EC"],
        "COMP-E-COMMERCE" => &["EC"],
        "COMP-POSTING-WORKERS"
        | "COMP-SOCIAL-SECURITY"
        | "COMP-LABOUR-INSPECTION"
        | "COMP-PENALTY-RECOVERY" => &["PW"],
        "COMP-PATIENT-RIGHTS" | "COMP-HEALTH-INSURANCE" => &["PR"],
        "COMP-CULTURAL-OBJECTS" => &["CO"],
        "COMP-CASH-IN-TRANSIT" => &["CIT"],
        _ => &[],
    }
}

/// The sector whose professions an authority named after this competence deals with.
fn sector_of(competence: &str) -> Option<Sector> {
    match competence {
        "COMP-PATIENT-RIGHTS" | "COMP-HEALTH-INSURANCE" | "COMP-PROFESSIONAL-ALERTS" => {
            Some(Sector::Health)
        }
        "COMP-ROAD-TRANSPORT" => Some(Sector::Transport),
        "COMP-CASH-IN-TRANSIT" => Some(Sector::Security),
        "COMP-POSTING-WORKERS" | "COMP-LABOUR-INSPECTION" | "COMP-ENVIRONMENTAL-PERMITS" => {
            Some(Sector::Construction)
        }
        "COMP-TAX" | "COMP-PENALTY-RECOVERY" => Some(Sector::Finance),
        "COMP-SOCIAL-SECURITY" => Some(Sector::Social),
        _ => None,
    }
}

/// A weighted choice among indices.
#[derive(Debug, Clone)]
struct Weighted {
    items: Vec<usize>,
    /// Running totals.
    cumulative: Vec<u32>,
}

impl Weighted {
    fn new(pairs: impl IntoIterator<Item = (usize, u32)>) -> Weighted {
        let mut items = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u32;
        for (item, weight) in pairs {
            if weight > 0 {
                total += weight;
                items.push(item);
                cumulative.push(total);
            }
        }
        Weighted { items, cumulative }
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn pick(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let x = rng.random_range(0..total);
        let i = self.cumulative.partition_point(|&c| c <= x);
        self.items.get(i).copied().unwrap_or(0)
    }
}

/// What the generator draws from the vocabulary and the catalogue.
struct Inputs<'a> {
    vocabulary: &'a Vocabulary,
    /// All professions, weighted (health and minors professions more often).
    professions: Weighted,
    /// Professions by sector (index in `Sector::ALL`), weighted.
    by_sector: Vec<Weighted>,
    /// Competence pools (indices into `vocabulary.competences()`).
    national: Weighted,
    regional: Weighted,
    local: Weighted,
    professional: Weighted,
    alerts: Option<usize>,
    /// Catalogue areas in order, with their procedures.
    areas: Vec<(String, Vec<String>)>,
}

fn sector_index(sector: Sector) -> usize {
    Sector::ALL.iter().position(|s| *s == sector).unwrap_or(0)
}

impl<'a> Inputs<'a> {
    fn new(vocabulary: &'a Vocabulary, catalogue: &Catalogue) -> Inputs<'a> {
        let weight = |p: &imi_domain::Profession| -> u32 {
            if SECTORAL.contains(&p.code()) {
                10
            } else if p.is_health() {
                4
            } else if p.involves_minors() {
                3
            } else {
                match p.sector() {
                    Sector::Legal
                    | Sector::Finance
                    | Sector::Engineering
                    | Sector::Construction => 2,
                    _ => 1,
                }
            }
        };
        let professions = vocabulary.professions();
        let by_sector = Sector::ALL
            .iter()
            .map(|s| {
                Weighted::new(
                    professions
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.sector() == *s)
                        .map(|(i, p)| (i, weight(p))),
                )
            })
            .collect();
        let competences = vocabulary.competences();
        let index = |code: &str| competences.iter().position(|c| c.code() == code);
        let pool = |list: &[(&str, u32)]| {
            let w = Weighted::new(list.iter().filter_map(|(c, w)| Some((index(c)?, *w))));
            if w.is_empty() {
                Weighted::new((0..competences.len()).map(|i| (i, 1)))
            } else {
                w
            }
        };
        Inputs {
            vocabulary,
            professions: Weighted::new(professions.iter().enumerate().map(|(i, p)| (i, weight(p)))),
            by_sector,
            national: Weighted::new((0..competences.len()).map(|i| (i, 1))),
            regional: pool(&REGIONAL_COMPETENCES),
            local: pool(&LOCAL_COMPETENCES),
            professional: pool(&PROFESSION_COMPETENCES),
            alerts: index(ALERTS),
            areas: catalogue
                .areas()
                .iter()
                .map(|a| {
                    let procedures = a.procedures().iter().map(|p| p.code().to_owned()).collect();
                    (a.code().to_owned(), procedures)
                })
                .collect(),
        }
    }

    fn profession_code(&self, i: usize) -> &str {
        self.vocabulary
            .professions()
            .get(i)
            .map_or("", |p| p.code())
    }

    fn competence_code(&self, i: usize) -> &str {
        self.vocabulary
            .competences()
            .get(i)
            .map_or("", |c| c.code())
    }
}

// --- Generation -----------------------------------------------------------------------------

/// One authority before its names are rendered.
struct Draft {
    kind: Kind,
    region: usize,
    city: usize,
    /// Index into the vocabulary's professions / competences.
    profession: usize,
    competence: usize,
}

/// The number of authorities of each country (in the gazetteer's order): `count` split by the
/// countries' weights, largest remainder first.
fn apportion(count: usize, weights: &[u64]) -> Vec<usize> {
    let total: u64 = weights.iter().sum::<u64>().max(1);
    let count64 = count as u64;
    let mut shares: Vec<usize> = weights
        .iter()
        .map(|w| (count64 * w / total) as usize)
        .collect();
    let mut left = count - shares.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(count64 * weights[i] % total));
    for i in order {
        if left == 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    shares
}

fn pick_count(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    Weighted::new(weights.iter().enumerate().map(|(i, w)| (i + 1, *w))).pick(rng)
}

/// Generates `count` competent authorities across the 30 EEA countries, deterministically
/// for `seed`, tagged with `vocabulary` codes and `catalogue` areas and procedures. Every
/// record passes [`Authority::validate`]; ids are `<CC>-G<nnnnn>`, ordered by id.
pub fn generate(
    count: usize,
    seed: u64,
    vocabulary: &Vocabulary,
    catalogue: &Catalogue,
) -> Vec<Authority> {
    let gazetteer = &*GAZETTEER;
    let inputs = Inputs::new(vocabulary, catalogue);
    let weights: Vec<u64> = gazetteer.countries.iter().map(|c| c.weight).collect();
    let shares = apportion(count, &weights);
    let mut out = Vec::with_capacity(count);
    for (country, n) in gazetteer.countries.iter().zip(shares) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(u64::from(u16::from_be_bytes(country.node.as_bytes())));
        generate_country(gazetteer, &inputs, country, n, &mut rng, &mut out);
    }
    out
}

fn generate_country(
    gazetteer: &Gazetteer,
    inputs: &Inputs<'_>,
    country: &Country,
    n: usize,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Authority>,
) {
    let levels = Weighted::new(country.levels.iter().enumerate().map(|(i, w)| (i, *w)));
    let cities: Vec<(usize, usize)> = country.cities().map(|(at, _)| at).collect();
    let city_pick = Weighted::new(
        country
            .cities()
            .enumerate()
            .map(|(i, (_, c))| (i, c.weight)),
    );
    let region_pick = Weighted::new(
        country
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.cities.iter().map(|c| c.weight).sum())),
    );
    let lexicons = lexicons(gazetteer, inputs, country);
    let mut seen = HashSet::new();
    for number in 1..=n {
        let mut attempt = 0;
        let (draft, names) = loop {
            let draft = make_draft(
                inputs,
                country,
                &levels,
                &cities,
                &city_pick,
                &region_pick,
                rng,
            );
            let names = render_names(&lexicons, &draft);
            attempt += 1;
            let english = names.get("en").cloned().unwrap_or_default();
            if seen.insert(english) || attempt >= 8 {
                break (draft, names);
            }
        };
        out.push(finish(inputs, country, number, draft, names, rng));
    }
}

fn make_draft(
    inputs: &Inputs<'_>,
    country: &Country,
    levels: &Weighted,
    cities: &[(usize, usize)],
    city_pick: &Weighted,
    region_pick: &Weighted,
    rng: &mut ChaCha8Rng,
) -> Draft {
    let level = levels.pick(rng);
    let professional = rng.random_range(0..100u32);
    let kind = match level {
        0 if professional < 50 => Kind::NationalChamber,
        0 => Kind::NationalAgency,
        1 if professional < 55 => Kind::RegionalChamber,
        1 => Kind::RegionalOffice,
        _ if professional < 45 => Kind::LocalOffice,
        _ => Kind::Municipality,
    };
    let any_city =
        |rng: &mut ChaCha8Rng| cities.get(city_pick.pick(rng)).copied().unwrap_or((0, 0));
    let (region, city) = match kind.level() {
        Level::National if rng.random_range(0..100u32) < 85 => country.capital,
        Level::National | Level::Local => any_city(rng),
        Level::Regional => (region_pick.pick(rng), 0),
    };
    let competence_pool = match kind {
        Kind::NationalAgency => &inputs.national,
        Kind::RegionalOffice => &inputs.regional,
        Kind::Municipality => &inputs.local,
        _ => &inputs.professional,
    };
    let (profession, competence) = if kind.professional() {
        let profession = inputs.professions.pick(rng);
        (profession, professional_competence(inputs, profession, rng))
    } else {
        let competence = competence_pool.pick(rng);
        let hinted = sector_of(inputs.competence_code(competence))
            .and_then(|s| inputs.by_sector.get(sector_index(s)))
            .filter(|w| !w.is_empty() && rng.random_range(0..100u32) < 80);
        let profession = hinted.unwrap_or(&inputs.professions).pick(rng);
        (profession, competence)
    };
    Draft {
        kind,
        region,
        city,
        profession,
        competence,
    }
}

/// A competence of a professional body for this profession: alerts are likely for health
/// professions and those working with minors.
fn professional_competence(inputs: &Inputs<'_>, profession: usize, rng: &mut ChaCha8Rng) -> usize {
    let alerting = inputs
        .vocabulary
        .professions()
        .get(profession)
        .is_some_and(|p| p.is_health() || p.involves_minors());
    match inputs.alerts {
        Some(alerts) if alerting && rng.random_range(0..100u32) < 15 => alerts,
        _ => inputs.professional.pick(rng),
    }
}

/// A country's words in one of its languages (or English), computed once per country so
/// that naming an authority is only filling a template.
struct Lexicon<'g> {
    lang: &'g str,
    /// By [`Kind::index`].
    templates: [&'g str; 6],
    /// (nominative, form after a noun) of each region, and of each city by region.
    regions: Vec<(String, String)>,
    cities: Vec<Vec<(String, String)>>,
    /// (name, name with a lowercase initial) of each profession and competence, in the
    /// vocabulary's order.
    professions: Vec<(String, String)>,
    competences: Vec<(String, String)>,
}

fn lexicons<'g>(
    gazetteer: &'g Gazetteer,
    inputs: &Inputs<'_>,
    country: &'g Country,
) -> Vec<Lexicon<'g>> {
    let langs = country
        .langs
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), Some(i)))
        .chain([("en", None)]);
    let vocabulary = inputs.vocabulary;
    let words = |lang: &str, codes: &mut dyn Iterator<Item = &str>| -> Vec<(String, String)> {
        codes
            .map(|code| {
                let word = vocabulary
                    .name(code, lang)
                    .or_else(|| vocabulary.name(code, "en"))
                    .unwrap_or(code);
                (word.to_owned(), lower_first(word))
            })
            .collect()
    };
    langs
        .map(|(lang, index)| Lexicon {
            lang,
            templates: Kind::ALL
                .map(|kind| gazetteer.template(lang, country.node, kind).unwrap_or("")),
            regions: country
                .regions
                .iter()
                .map(|r| place_name(&r.place, lang, index))
                .collect(),
            cities: country
                .regions
                .iter()
                .map(|r| {
                    r.cities
                        .iter()
                        .map(|c| place_name(c, lang, index))
                        .collect()
                })
                .collect(),
            professions: words(lang, &mut vocabulary.professions().iter().map(|p| p.code())),
            competences: words(lang, &mut vocabulary.competences().iter().map(|c| c.code())),
        })
        .collect()
}

fn render_names(lexicons: &[Lexicon<'_>], draft: &Draft) -> BTreeMap<String, String> {
    const NONE: &(String, String) = &(String::new(), String::new());
    let mut names = BTreeMap::new();
    for lex in lexicons {
        let template = lex.templates.get(draft.kind.index()).copied().unwrap_or("");
        let (r, rg) = lex.regions.get(draft.region).unwrap_or(NONE);
        let (c, cg) = lex
            .cities
            .get(draft.region)
            .and_then(|cities| cities.get(draft.city))
            .unwrap_or(NONE);
        let (p, pl) = lex.professions.get(draft.profession).unwrap_or(NONE);
        let (k, kl) = lex.competences.get(draft.competence).unwrap_or(NONE);
        let vars = [
            ("c", c.as_str()),
            ("cg", cg.as_str()),
            ("r", r.as_str()),
            ("rg", rg.as_str()),
            ("p", p.as_str()),
            ("pl", pl.as_str()),
            ("k", k.as_str()),
            ("kl", kl.as_str()),
        ];
        names.insert(lex.lang.to_owned(), render(template, &vars));
    }
    names
}

/// Professions, competences, areas and procedures around the draft's own profession and
/// competence.
fn finish(
    inputs: &Inputs<'_>,
    country: &Country,
    number: usize,
    draft: Draft,
    names: BTreeMap<String, String>,
    rng: &mut ChaCha8Rng,
) -> Authority {
    let vocabulary = inputs.vocabulary;
    // Professions: the named one first, then others of its sector.
    let n_professions = pick_count(rng, &[30, 25, 18, 12, 8, 7]);
    let mut professions = vec![draft.profession];
    let sector = vocabulary
        .professions()
        .get(draft.profession)
        .map(|p| sector_index(p.sector()));
    let mut peers: Vec<usize> = sector
        .and_then(|s| inputs.by_sector.get(s))
        .map(|w| w.items.clone())
        .unwrap_or_default();
    peers.retain(|&p| p != draft.profession);
    peers.shuffle(rng);
    professions.extend(peers.into_iter().take(n_professions - 1));
    let mut tries = 0;
    while professions.len() < n_professions && tries < 32 {
        let p = inputs.professions.pick(rng);
        if !professions.contains(&p) {
            professions.push(p);
        }
        tries += 1;
    }
    // Competences: the named one first.
    let n_competences = pick_count(rng, &[35, 30, 20, 15]);
    let own_pool = match draft.kind {
        Kind::NationalAgency => &inputs.national,
        Kind::RegionalOffice => &inputs.regional,
        Kind::Municipality => &inputs.local,
        _ => &inputs.professional,
    };
    let mut competences = vec![draft.competence];
    let mut tries = 0;
    while competences.len() < n_competences && tries < 32 {
        let c = if draft.kind.professional() {
            professional_competence(inputs, draft.profession, rng)
        } else if rng.random_range(0..100u32) < 70 {
            own_pool.pick(rng)
        } else {
            inputs.professional.pick(rng)
        };
        if !competences.contains(&c) {
            competences.push(c);
        }
        tries += 1;
    }
    let professions: Vec<String> = professions
        .into_iter()
        .map(|i| inputs.profession_code(i).to_owned())
        .collect();
    let competences: Vec<String> = competences
        .into_iter()
        .map(|i| inputs.competence_code(i).to_owned())
        .collect();
    // Areas follow from the competences (and patients' rights from health professions);
    // procedures: a non-empty subset of each area's.
    let mut wanted: BTreeSet<&str> = competences
        .iter()
        .flat_map(|c| areas_of(c))
        .copied()
        .collect();
    let health = vocabulary
        .professions()
        .get(draft.profession)
        .is_some_and(|p| p.is_health());
    if health && rng.random_range(0..100u32) < 30 {
        wanted.insert("PR");
    }
    let mut areas: Vec<&(String, Vec<String>)> = inputs
        .areas
        .iter()
        .filter(|(code, _)| wanted.contains(code.as_str()))
        .collect();
    if areas.is_empty() {
        let fallback = inputs
            .areas
            .iter()
            .find(|(code, _)| code == "PQ")
            .or_else(|| inputs.areas.first());
        areas.extend(fallback);
    }
    let mut procedures = Vec::new();
    for (_, area_procedures) in &areas {
        let before = procedures.len();
        for p in area_procedures {
            if rng.random_range(0..100u32) < 75 {
                procedures.push(p.clone());
            }
        }
        if procedures.len() == before && !area_procedures.is_empty() {
            let i = rng.random_range(0..area_procedures.len());
            procedures.extend(area_procedures.get(i).cloned());
        }
    }
    let region = country.regions.get(draft.region);
    let city = region.and_then(|r| r.cities.get(draft.city));
    let id = format!("{}-G{number:05}", country.node.as_str());
    Authority {
        id: AuthorityId::new(&id).unwrap_or_else(|e| panic!("generated id {id}: {e}")),
        country: country.node,
        names,
        level: draft.kind.level(),
        areas: areas.into_iter().map(|(code, _)| code.clone()).collect(),
        procedures,
        professions,
        competences,
        city: city.map(|c| c.field.clone()),
        region: region.map(|r| r.place.field.clone()),
    }
}

// --- Output -----------------------------------------------------------------------------------

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The authorities as a directory file in the format of `configs/directory/authorities.toml`
/// (`[[authorities]]` tables, names in the country's languages then English), with a header
/// saying how it was made and a comment line before each country.
pub fn to_toml(authorities: &[Authority], seed: u64) -> String {
    let gazetteer = &*GAZETTEER;
    let mut out = String::with_capacity(authorities.len() * 700);
    let _ = write!(
        out,
        "# Competent authorities of the IMI federation: a generated directory of {} authorities.\n\
         #\n\
         # Made by `imi-sim directory generate --count {} --seed {seed}` (simulations/src/\n\
         # directory_gen.rs) for the benchmarks and the simulations; the same count and seed give\n\
         # the same file. The format is that of configs/directory/authorities.toml. Places are\n\
         # real, names are built from templates: the authorities themselves are fictitious.\n",
        authorities.len(),
        authorities.len(),
    );
    let mut current = None;
    for a in authorities {
        let country = gazetteer.country(a.country);
        if current != Some(a.country) {
            current = Some(a.country);
            let name = country.map_or("", |c| c.name.as_str());
            let n = authorities
                .iter()
                .filter(|b| b.country == a.country)
                .count();
            let _ = write!(out, "\n# --- {}: {name} ({n}) ", a.country.as_str());
            let width = 80usize.saturating_sub(out.lines().last().map_or(0, |l| l.chars().count()));
            out.push_str(&"-".repeat(width.max(3)));
            out.push('\n');
        }
        let _ = writeln!(out, "\n[[authorities]]");
        let _ = writeln!(out, "id = {}", quote(a.id.as_str()));
        let _ = writeln!(out, "country = {}", quote(a.country.as_str()));
        let _ = writeln!(out, "level = {}", quote(a.level.as_str()));
        if let Some(city) = &a.city {
            let _ = writeln!(out, "city = {}", quote(city));
        }
        if let Some(region) = &a.region {
            let _ = writeln!(out, "region = {}", quote(region));
        }
        let _ = writeln!(out, "areas = {}", quote_list(&a.areas));
        let _ = writeln!(out, "procedures = {}", quote_list(&a.procedures));
        if !a.professions.is_empty() {
            let _ = writeln!(out, "professions = {}", quote_list(&a.professions));
        }
        if !a.competences.is_empty() {
            let _ = writeln!(out, "competences = {}", quote_list(&a.competences));
        }
        let _ = writeln!(out, "[authorities.names]");
        let order: Vec<&str> = country
            .map(|c| c.langs.iter().map(String::as_str).chain(["en"]).collect())
            .unwrap_or_default();
        let rest = a
            .names
            .keys()
            .map(String::as_str)
            .filter(|l| !order.contains(l));
        for lang in order.iter().copied().chain(rest) {
            if let Some(name) = a.names.get(lang) {
                let _ = writeln!(out, "{lang} = {}", quote(name));
            }
        }
    }
    out
}

/// One line per country: how many authorities at each level, in how many regions and cities.
pub fn summary(authorities: &[Authority]) -> Vec<String> {
    let mut by_country: BTreeMap<NodeId, Vec<&Authority>> = BTreeMap::new();
    for a in authorities {
        by_country.entry(a.country).or_default().push(a);
    }
    by_country
        .into_iter()
        .map(|(node, list)| {
            let level = |l: Level| list.iter().filter(|a| a.level == l).count();
            let regions: BTreeSet<_> = list.iter().filter_map(|a| a.region.as_deref()).collect();
            let cities: BTreeSet<_> = list.iter().filter_map(|a| a.city.as_deref()).collect();
            let name = GAZETTEER.country(node).map_or("", |c| c.name.as_str());
            format!(
                "{} {name:<13} {:>5} authorities: {:>3} national, {:>4} regional, {:>4} local; \
                 {:>2} regions, {:>2} cities",
                node.as_str(),
                list.len(),
                level(Level::National),
                level(Level::Regional),
                level(Level::Local),
                regions.len(),
                cities.len(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> (Catalogue, Vocabulary) {
        let configs = repo_configs();
        load_inputs(&configs.join("catalogue"), &configs.join("vocabularies")).unwrap()
    }

    #[test]
    fn directory_gen_gazetteer_covers_every_member() {
        let g = &*GAZETTEER;
        let members: Vec<NodeId> = NodeId::ALL
            .iter()
            .copied()
            .filter(|n| *n != NodeId::EU)
            .collect();
        let listed: Vec<NodeId> = g.countries.iter().map(|c| c.node).collect();
        assert_eq!(listed, members);
        let (catalogue, _) = inputs();
        let languages: Vec<&str> = catalogue.languages().iter().map(|l| l.code()).collect();
        for c in &g.countries {
            assert!(!c.regions.is_empty(), "{}", c.name);
            for lang in &c.langs {
                assert!(languages.contains(&lang.as_str()), "{}: {lang}", c.name);
            }
            for (_, place) in c.cities() {
                assert!(!place.field.is_empty() && !place.en.is_empty());
            }
        }
        assert_eq!(apportion(10, &[1, 1, 1]), [4, 3, 3]);
        assert_eq!(apportion(0, &[1, 2]), [0, 0]);
    }

    #[test]
    fn directory_gen_12500_valid_unique_complete() {
        let (catalogue, vocabulary) = inputs();
        let started = Instant::now();
        let authorities = generate(DEFAULT_COUNT, 1, &vocabulary, &catalogue);
        eprintln!(
            "generated {} authorities in {:.1} ms",
            authorities.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        assert_eq!(authorities.len(), DEFAULT_COUNT);
        let mut ids = HashSet::new();
        let procedure_area: HashMap<&str, &str> = catalogue
            .areas()
            .iter()
            .flat_map(|a| a.procedures().iter().map(move |p| (p.code(), a.code())))
            .collect();
        for a in &authorities {
            a.validate().unwrap_or_else(|e| panic!("{}: {e}", a.id));
            assert!(ids.insert(a.id.clone()), "{} twice", a.id);
            assert!(a.id.as_str().len() <= 64);
            assert!((1..=6).contains(&a.professions.len()), "{}", a.id);
            assert!((1..=4).contains(&a.competences.len()), "{}", a.id);
            for p in &a.professions {
                assert!(vocabulary.profession(p).is_some(), "{}: {p}", a.id);
            }
            for c in &a.competences {
                assert!(vocabulary.competence(c).is_some(), "{}: {c}", a.id);
            }
            assert!(!a.areas.is_empty() && !a.procedures.is_empty(), "{}", a.id);
            for area in &a.areas {
                assert!(catalogue.area(area).is_some(), "{}: {area}", a.id);
            }
            for p in &a.procedures {
                let area = procedure_area.get(p.as_str());
                assert!(area.is_some_and(|x| a.handles_area(x)), "{}: {p}", a.id);
            }
            assert!(a.city.is_some() && a.region.is_some(), "{}", a.id);
            let country = GAZETTEER.country(a.country).unwrap();
            for lang in country.langs.iter().map(String::as_str).chain(["en"]) {
                let name = a
                    .names
                    .get(lang)
                    .unwrap_or_else(|| panic!("{}: no {lang}", a.id));
                assert!(!name.contains(['{', '}']), "{}: {name}", a.id);
            }
            assert_eq!(a.names.len(), country.langs.len() + 1, "{}", a.id);
        }
        let counts: BTreeMap<NodeId, usize> =
            authorities.iter().fold(BTreeMap::new(), |mut m, a| {
                *m.entry(a.country).or_default() += 1;
                m
            });
        assert_eq!(counts.len(), 30);
        assert!(counts.values().all(|&n| n >= 20), "{counts:?}");
        let largest: Vec<NodeId> = {
            let mut v: Vec<_> = counts.iter().collect();
            v.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
            v.into_iter().take(5).map(|(c, _)| *c).collect()
        };
        for c in [NodeId::DE, NodeId::FR, NodeId::IT, NodeId::ES, NodeId::PL] {
            assert!(largest.contains(&c), "{largest:?}");
        }
        let level = |l: Level| authorities.iter().filter(|a| a.level == l).count();
        assert!(level(Level::National) < level(Level::Regional));
        assert!(level(Level::Regional) < level(Level::Local));
        // Scripts are kept.
        let bg = authorities
            .iter()
            .find(|a| a.country == NodeId::BG)
            .unwrap();
        assert!(
            bg.names["bg"]
                .chars()
                .any(|c| ('\u{400}'..='\u{4ff}').contains(&c))
        );
        let el = authorities
            .iter()
            .find(|a| a.country == NodeId::EL)
            .unwrap();
        assert!(
            el.names["el"]
                .chars()
                .any(|c| ('\u{370}'..='\u{3ff}').contains(&c))
        );
        // The named profession comes first, and the name carries it.
        let chamber = authorities
            .iter()
            .find(|a| a.country == NodeId::DE && a.names["de"].starts_with("Landeskammer"))
            .unwrap();
        let first = vocabulary.name(&chamber.professions[0], "de").unwrap();
        assert!(chamber.names["de"].contains(first), "{chamber:?}");
        for line in summary(&authorities) {
            eprintln!("{line}");
        }
    }

    fn per_country(list: &[Authority]) -> BTreeMap<NodeId, Vec<&Authority>> {
        let mut m: BTreeMap<NodeId, Vec<&Authority>> = BTreeMap::new();
        for a in list {
            m.entry(a.country).or_default().push(a);
        }
        m
    }

    #[test]
    fn directory_gen_deterministic_per_seed() {
        let (catalogue, vocabulary) = inputs();
        let a = to_toml(&generate(2_000, 7, &vocabulary, &catalogue), 7);
        let b = to_toml(&generate(2_000, 7, &vocabulary, &catalogue), 7);
        assert_eq!(a, b);
        let one = generate(2_000, 7, &vocabulary, &catalogue);
        let other = generate(2_000, 8, &vocabulary, &catalogue);
        assert_eq!(one.len(), other.len());
        let same = one.iter().zip(&other).filter(|(x, y)| x == y).count();
        assert!(same < one.len() / 10, "{same} of {} identical", one.len());
        // A country's authorities depend on the seed and its own count only: one more
        // authority in all changes one country.
        let base = generate(DEFAULT_COUNT, 7, &vocabulary, &catalogue);
        let plus = generate(DEFAULT_COUNT + 1, 7, &vocabulary, &catalogue);
        let (base, plus) = (per_country(&base), per_country(&plus));
        let changed: Vec<_> = base.keys().filter(|c| base[*c] != plus[*c]).collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        let c = changed[0];
        assert_eq!(plus[c].len(), base[c].len() + 1);
        assert_eq!(&plus[c][..base[c].len()], &base[c][..]);
    }

    #[test]
    fn directory_gen_toml_round_trips_through_the_node_loader() {
        let (catalogue, vocabulary) = inputs();
        let authorities = generate(DEFAULT_COUNT, 3, &vocabulary, &catalogue);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authorities.toml");
        std::fs::write(&path, to_toml(&authorities, 3)).unwrap();
        let loaded = imi_node::config::load_directory(&path).unwrap();
        let expected = imi_domain::Directory::from_authorities(authorities).unwrap();
        assert_eq!(loaded, expected);
        assert_eq!(loaded.len(), DEFAULT_COUNT);
        // The hand-written seed and the generated file share the format.
        let seed =
            imi_node::config::load_directory(&repo_configs().join("directory/authorities.toml"))
                .unwrap();
        assert!(!seed.is_empty());
    }

    #[test]
    fn directory_gen_renders_language_forms() {
        let g = &*GAZETTEER;
        let fr = g.country(NodeId::FR).unwrap();
        let angers = fr.cities().find(|(_, c)| c.field == "Angers").unwrap().1;
        assert_eq!(place_name(angers, "fr", Some(0)).1, "d'Angers");
        let havre = fr.cities().find(|(_, c)| c.field == "Le Havre").unwrap().1;
        assert_eq!(place_name(havre, "fr", Some(0)).1, "du Havre");
        let fi = g.country(NodeId::FI).unwrap();
        let turku = fi.cities().find(|(_, c)| c.field == "Turku").unwrap().1;
        assert_eq!(place_name(turku, "fi", Some(0)).1, "Turun");
        assert_eq!(place_name(turku, "sv", Some(1)).0, "Åbo");
        assert_eq!(place_name(turku, "en", None).0, "Turku");
        let ie = g.country(NodeId::IE).unwrap();
        assert_eq!(ie.cities().next().unwrap().1.field, "Dublin");
        let be = g.country(NodeId::BE).unwrap();
        let liege = be.cities().find(|(_, c)| c.en == "Liège").unwrap().1;
        assert_eq!(liege.field, "Liège");
        assert_eq!(place_name(liege, "nl", Some(0)).0, "Luik");
        let pl = g.country(NodeId::PL).unwrap();
        let masovia = &pl.regions[6].place;
        assert_eq!(
            place_name(masovia, "en", None).1,
            "the Masovian Voivodeship"
        );
        assert_eq!(english_of_form("Bavaria"), "Bavaria");
        assert_eq!(english_of_form("County Cork"), "County Cork");
        assert_eq!(
            english_of_form("Capital Region of Denmark"),
            "the Capital Region of Denmark"
        );
        assert_eq!(lower_first("Médecin"), "médecin");
        assert_eq!(lower_first("GP"), "GP");
        assert_eq!(
            render("Mairie {cg} – {k}", &[("cg", "de Lyon"), ("k", "X")]),
            "Mairie de Lyon – X"
        );
    }
}
