//! Generated provider drafts for benchmarks, the demo and tests: fixtures made by code,
//! not checked-in files.
//!
//! The identifiers are fabricated with valid check characters (R-DATA-1). Fabricated
//! numbers can collide with real people, so they belong in tests and demos only.

use chrono::{Days, NaiveDate};

use super::catalog::{AdverseRule, Catalog, Category, FieldSpec, FieldType};
use super::identifier::{resident_id_check_char, uscc_check_char};
use super::validate::{parse_date, parse_year_month};
use crate::domain::record::{Draft, SubjectKind};

/// County-level codes under 朝阳市 (211300) used for generated resident ids.
const COUNTIES: [&str; 7] = [
    "211302", "211303", "211321", "211322", "211324", "211381", "211382",
];
const SURNAMES: [&str; 12] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "孙", "马",
];
const GIVEN: [&str; 16] = [
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "春梅",
];
const PLACES: [&str; 4] = ["朝阳市", "凌源市", "北票市", "建平县"];
const WORDS: [&str; 8] = [
    "宏达", "鑫源", "华兴", "恒泰", "永盛", "金桥", "东方", "瑞丰",
];
const TRADES: [&str; 8] = [
    "建材",
    "物流",
    "商贸",
    "农业科技",
    "食品",
    "机械制造",
    "矿业",
    "建筑工程",
];
const SUFFIXES: [&str; 3] = ["有限公司", "有限责任公司", "股份有限公司"];

/// splitmix64: tiny, fast and good enough for fixtures; no `rand` dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; 0 when `n` is 0.
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = self.below(items.len() as u64) as usize;
        items.get(i).copied().unwrap_or("")
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// Generates valid drafts: n records over `subjects` distinct subjects, spread over
/// categories the catalog has, all passing `check` for `today`.
///
/// "Valid" holds for any `today` after the last day of `period` (YYYY-MM) and after 2005: dates fall
/// inside `period`, birth dates between 1950 and 2004. Record `i` is about subject
/// `i % subjects`, so every subject appears once `n >= subjects`; about a third of the
/// subjects are natural persons when the catalog has categories for both kinds. The
/// same arguments always give the same drafts; `provider_ref` is `GEN-<seed>-<i>`.
/// A malformed `period` is kept as given, so the drafts then fail with R-DATA-5.
pub fn generate_drafts(
    catalog: &Catalog,
    n: usize,
    subjects: usize,
    seed: u64,
    period: &str,
) -> Vec<Draft> {
    generate(catalog.categories().collect(), n, subjects, seed, period)
}

/// `generate_drafts`, in the named categories only (names the catalog lacks are ignored).
pub fn generate_drafts_in(
    catalog: &Catalog,
    categories: &[&str],
    n: usize,
    subjects: usize,
    seed: u64,
    period: &str,
) -> Vec<Draft> {
    let chosen = catalog
        .categories()
        .filter(|c| categories.contains(&c.code.as_str()))
        .collect();
    generate(chosen, n, subjects, seed, period)
}

fn generate(
    categories: Vec<&Category>,
    n: usize,
    subjects: usize,
    seed: u64,
    period: &str,
) -> Vec<Draft> {
    let legal: Vec<&Category> = categories
        .iter()
        .copied()
        .filter(|c| c.allows(SubjectKind::Legal))
        .collect();
    let natural: Vec<&Category> = categories
        .iter()
        .copied()
        .filter(|c| c.allows(SubjectKind::Natural))
        .collect();
    if legal.is_empty() && natural.is_empty() {
        return Vec::new();
    }
    let (year, month) = parse_year_month(period).unwrap_or((2000, 1));
    let subjects = subjects.max(1) as u64;
    let offset = SplitMix(seed).next() % 1_000_000;
    let mut rng = SplitMix(seed ^ 0x5EED_CAFE_F00D_D00D);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s = i as u64 % subjects;
        let mut subject_rng = SplitMix(seed.wrapping_add(s));
        let natural_subject = if natural.is_empty() {
            false
        } else {
            legal.is_empty() || subject_rng.below(3) == 0
        };
        let (kind, id, name, categories) = if natural_subject {
            let name = person_name(&mut subject_rng);
            (
                SubjectKind::Natural,
                resident_id(s + offset),
                name,
                &natural,
            )
        } else {
            let name = company_name(&mut subject_rng);
            (
                SubjectKind::Legal,
                uscc(s + offset, s.is_multiple_of(2)),
                name,
                &legal,
            )
        };
        let category = categories[rng.below(categories.len() as u64) as usize];
        let day = 1 + rng.below(28) as u32;
        let occurred = NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default();
        let ended_on = (rng.below(5) == 0).then(|| {
            let later = 1 + rng.below(u64::from(28 - day) + 1);
            let ended = occurred
                .checked_add_days(Days::new(later - 1))
                .unwrap_or(occurred);
            ended.to_string()
        });
        let mut draft = Draft {
            subject_kind: Some(kind),
            subject_id: id,
            subject_name: name,
            category: category.code.clone(),
            provider_ref: format!("GEN-{seed}-{i}"),
            occurred_on: occurred.to_string(),
            ended_on,
            period: period.to_string(),
            adverse: match category.adverse {
                AdverseRule::Yes => rng.coin().then_some(true),
                AdverseRule::No => rng.coin().then_some(false),
                AdverseRule::PerRecord => Some(rng.below(4) == 0),
            },
            fields: Default::default(),
        };
        for spec in category.fields.iter().filter(|f| f.applies_to(kind)) {
            if spec.required || rng.coin() {
                let value = field_value(spec, category, &draft, i, &mut rng);
                draft.fields.insert(spec.name.clone(), value);
            }
        }
        out.push(draft);
    }
    out
}

fn person_name(rng: &mut SplitMix) -> String {
    format!("{}{}", rng.pick(&SURNAMES), rng.pick(&GIVEN))
}

fn company_name(rng: &mut SplitMix) -> String {
    format!(
        "{}{}{}{}",
        rng.pick(&PLACES),
        rng.pick(&WORDS),
        rng.pick(&TRADES),
        rng.pick(&SUFFIXES)
    )
}

/// A USCC unique for `k < 10^8` per region: 91 (enterprise), region 211382 or 211300, an
/// organisation code with its GB 11714 check character, then the mod-31 check character.
fn uscc(k: u64, lingyuan: bool) -> String {
    let region = if lingyuan { "211382" } else { "211300" };
    uscc_in("91", region, k)
}

fn uscc_in(prefix: &str, region: &str, k: u64) -> String {
    const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let org = format!("{:08}", k % 100_000_000);
    let sum: u32 = org
        .bytes()
        .zip(ORG_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let org_check = match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        c => char::from(b'0' + c as u8),
    };
    let mut code = format!("{prefix}{region}{org}{org_check}");
    // The body is 17 characters of the USCC set by construction.
    code.push(uscc_check_char(&code).unwrap_or('0'));
    code
}

/// A resident id unique for `k < 1.4 * 10^8`: county, birth date 1950-01-01 plus up to
/// 20,000 days, sequence number, check character.
fn resident_id(k: u64) -> String {
    let seq = k % 1000;
    let rest = k / 1000;
    let county = COUNTIES[(rest / 20_000 % COUNTIES.len() as u64) as usize];
    let born = NaiveDate::from_ymd_opt(1950, 1, 1)
        .and_then(|d| d.checked_add_days(Days::new(rest % 20_000)))
        .unwrap_or_default();
    let mut id = format!("{county}{}{seq:03}", born.format("%Y%m%d"));
    id.push(resident_id_check_char(&id).unwrap_or('0'));
    id
}

/// A valid value of the field's type, realistic where the field is a well-known one.
fn field_value(
    spec: &FieldSpec,
    category: &Category,
    draft: &Draft,
    i: usize,
    rng: &mut SplitMix,
) -> String {
    let year = draft.occurred_on.get(..4).unwrap_or("2024");
    match spec.kind {
        FieldType::Text => {
            let text = text_value(spec, category, year, i, rng);
            match spec.max_len {
                Some(max) => text.chars().take(max).collect(),
                None => text,
            }
        }
        FieldType::Date => draft.occurred_on.clone(),
        FieldType::YearMonth => match parse_date(&draft.occurred_on) {
            Some(d) => d.format("%Y-%m").to_string(),
            None => draft.period.clone(),
        },
        FieldType::Integer => rng.below(10_000).to_string(),
        FieldType::Decimal => format!("{}.{:02}", rng.below(100_000), rng.below(100)),
        FieldType::Bool => rng.coin().to_string(),
        FieldType::Uscc => uscc_in("11", "211382", rng.below(100_000_000)),
        FieldType::ResidentId => resident_id(rng.below(100_000_000)),
        FieldType::Enum => {
            let at = rng.below(spec.values.len() as u64) as usize;
            spec.values.get(at).cloned().unwrap_or_default()
        }
    }
}

fn text_value(
    spec: &FieldSpec,
    category: &Category,
    year: &str,
    i: usize,
    rng: &mut SplitMix,
) -> String {
    let authority = match category.code.as_str() {
        "tax" => "国家税务总局凌源市税务局",
        "social_insurance" => "凌源市社会保险事业服务中心",
        "housing_fund" => "朝阳市住房公积金管理中心",
        "logistics" => "凌源市交通运输局",
        "water" => "凌源市自来水公司",
        "power" => "国网辽宁省电力有限公司朝阳供电公司",
        "gas" => "朝阳港华燃气有限公司",
        "court_judgment" => "凌源市人民法院",
        "intellectual_property" => "国家知识产权局",
        "dishonest_list" => "凌源市人民法院",
        "honor_list" => "凌源市人民政府",
        _ => "凌源市市场监督管理局",
    };
    match spec.name.as_str() {
        "decision_no" if category.code == "admin_penalty" => {
            format!("凌市监罚决〔{year}〕{}号", 100 + i)
        }
        "decision_no" => format!("凌市监许〔{year}〕{}号", 100 + i),
        "document_no" => format!("凌政发〔{year}〕{}号", 100 + i),
        "case_no" => format!("（{year}）辽1382民初{}号", 1000 + i),
        "license_no" | "permit_no" | "right_no" | "account_no" => {
            format!("{}{:08}", year, rng.below(100_000_000))
        }
        "legal_representative" => person_name(rng),
        "authority"
        | "registration_authority"
        | "tax_authority"
        | "agency"
        | "fund_center"
        | "supplier"
        | "court"
        | "data_source" => authority.to_string(),
        _ => {
            let label = spec.name_zh.as_deref().unwrap_or(&spec.name);
            format!("{label}（样例 {i}）")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;
    use crate::policy::Validator;
    use crate::policy::identifier::{check_resident_id, check_uscc};

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 10).unwrap()
    }

    #[test]
    fn generated_drafts_all_pass_check() {
        let catalog = Arc::new(Catalog::builtin().unwrap());
        let drafts = generate_drafts(&catalog, 2_000, 300, 7, "2024-05");
        assert_eq!(drafts.len(), 2_000);
        let validator = Validator::new(catalog.clone(), Vec::new());
        for d in &drafts {
            if let Err(v) = validator.check(d, "gen", today()) {
                panic!("{v}\n{d:#?}");
            }
        }
        let categories: HashSet<&str> = drafts.iter().map(|d| d.category.as_str()).collect();
        assert_eq!(
            categories.len(),
            catalog.categories().count(),
            "all categories used"
        );
    }

    #[test]
    fn subjects_and_refs_are_distinct_and_output_is_deterministic() {
        let catalog = Catalog::builtin().unwrap();
        let drafts = generate_drafts(&catalog, 1_000, 250, 42, "2024-05");
        let ids: HashSet<&str> = drafts.iter().map(|d| d.subject_id.as_str()).collect();
        assert_eq!(ids.len(), 250);
        let refs: HashSet<&str> = drafts.iter().map(|d| d.provider_ref.as_str()).collect();
        assert_eq!(refs.len(), 1_000);
        assert!(
            drafts
                .iter()
                .any(|d| d.subject_kind == Some(SubjectKind::Natural))
        );
        assert!(
            drafts
                .iter()
                .any(|d| d.subject_kind == Some(SubjectKind::Legal))
        );
        assert_eq!(drafts, generate_drafts(&catalog, 1_000, 250, 42, "2024-05"));
        assert_ne!(drafts, generate_drafts(&catalog, 1_000, 250, 43, "2024-05"));
    }

    #[test]
    fn generated_identifiers_are_valid() {
        for k in [0, 1, 999, 1_000, 19_999_999, 99_999_999, 139_999_999] {
            let id = resident_id(k);
            assert_eq!(check_resident_id(&id, today()), Ok(()), "{id}");
            for lingyuan in [true, false] {
                let code = uscc(k, lingyuan);
                assert_eq!(check_uscc(&code), Ok(()), "{code}");
            }
        }
    }

    #[test]
    fn empty_inputs() {
        let catalog = Catalog::builtin().unwrap();
        assert!(generate_drafts(&catalog, 0, 10, 1, "2024-05").is_empty());
        assert_eq!(generate_drafts(&catalog, 3, 0, 1, "2024-05").len(), 3);
        let empty = Catalog::from_toml_str("").unwrap();
        assert!(generate_drafts(&empty, 10, 10, 1, "2024-05").is_empty());
    }
}
