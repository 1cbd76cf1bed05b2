//! 禁止采集的信息: personal data a node must never collect about natural persons
//! (R-DATA-3).
//!
//! Liaoning measures art. 11 (and Liaoning regulation art. 15, quoted in the Chaoyang
//! notice) forbid collecting a person's marital status, religion, genes, fingerprints,
//! blood type, illness and medical history, income, deposits, securities, commercial
//! insurance, real estate and tax amounts. The node cannot read values for meaning, so
//! it refuses by field name: a record that carries such a field for a natural person is
//! refused at the first node it reaches.
//!
//! English names are split into word tokens and matched as whole tokens, so that
//! `general` does not hit `gene` and `intellectual_property` or `social_insurance`,
//! which real categories need, do not hit `real property` or `commercial insurance`.
//! Chinese names are matched by substring.

/// The legal basis cited when a prohibited field is refused.
pub const PROHIBITED_ARTICLE: &str =
    "Liaoning measures art. 11; Liaoning regulation art. 15 as quoted in the Chaoyang notice";

/// Single tokens that name prohibited data on their own, with what they name.
const SINGLE: &[(&str, &str)] = &[
    ("income", "income"),
    ("salary", "income"),
    ("salaries", "income"),
    ("wage", "income"),
    ("wages", "income"),
    ("religion", "religion"),
    ("religious", "religion"),
    ("gene", "genes"),
    ("genes", "genes"),
    ("genetic", "genes"),
    ("genome", "genes"),
    ("dna", "genes"),
    ("fingerprint", "fingerprints"),
    ("fingerprints", "fingerprints"),
    ("illness", "illness or medical history"),
    ("disease", "illness or medical history"),
    ("diseases", "illness or medical history"),
    ("diagnosis", "illness or medical history"),
    ("medical", "illness or medical history"),
    ("marital", "marital status"),
    ("marriage", "marital status"),
    ("deposit", "deposits"),
    ("deposits", "deposits"),
    ("securities", "securities"),
    ("stocks", "securities"),
    ("bloodtype", "blood type"),
    ("realestate", "real estate"),
    ("realty", "real estate"),
];

/// Two consecutive tokens that together name prohibited data.
const PAIRS: &[(&str, &str, &str)] = &[
    ("blood", "type", "blood type"),
    ("blood", "group", "blood type"),
    ("real", "estate", "real estate"),
    ("real", "property", "real estate"),
    ("medical", "history", "illness or medical history"),
    ("medical", "record", "illness or medical history"),
    ("commercial", "insurance", "commercial insurance"),
    ("life", "insurance", "commercial insurance"),
    ("tax", "amount", "tax amount"),
    ("tax", "paid", "tax amount"),
    ("tax", "payable", "tax amount"),
    ("tax", "payment", "tax amount"),
    ("tax", "sum", "tax amount"),
    ("taxes", "paid", "tax amount"),
];

/// Chinese terms matched as substrings. Longer terms come before the shorter terms they
/// contain, so the description is the most specific one.
const CHINESE: &[(&str, &str)] = &[
    ("婚姻", "marital status"),
    ("宗教", "religion"),
    ("信仰", "religion"),
    ("基因", "genes"),
    ("指纹", "fingerprints"),
    ("血型", "blood type"),
    ("疾病", "illness or medical history"),
    ("病史", "illness or medical history"),
    ("病历", "illness or medical history"),
    ("收入", "income"),
    ("工资", "income"),
    ("薪酬", "income"),
    ("存款", "deposits"),
    ("有价证券", "securities"),
    ("证券", "securities"),
    ("商业保险", "commercial insurance"),
    ("不动产", "real estate"),
    ("房产", "real estate"),
    ("纳税数额", "tax amount"),
    ("纳税金额", "tax amount"),
    ("纳税额", "tax amount"),
    ("税额", "tax amount"),
];

/// What prohibited personal data `field_name` names, if any (R-DATA-3): a short English
/// description such as `"income"` or `"marital status"`.
///
/// `monthlyIncome`, `monthly_income`, `Monthly-Income` and `月收入` all give `"income"`;
/// `general`, `property_type`, `tax_status` and `social_insurance` give `None`.
pub fn prohibited_term(field_name: &str) -> Option<&'static str> {
    if let Some(&(_, what)) = CHINESE.iter().find(|(t, _)| field_name.contains(t)) {
        return Some(what);
    }
    let tokens = tokens(field_name);
    for (i, tok) in tokens.iter().enumerate() {
        if let Some(&(_, what)) = SINGLE.iter().find(|(t, _)| t == tok) {
            return Some(what);
        }
        if let Some(next) = tokens.get(i + 1)
            && let Some(&(_, _, what)) = PAIRS.iter().find(|(a, b, _)| a == tok && b == next)
        {
            return Some(what);
        }
    }
    None
}

/// Lower-case ASCII word tokens of a field name. Tokens end at any character that is not
/// an ASCII letter or digit, between letters and digits, and at camel-case humps
/// (`monthlyIncome` -> `monthly`, `income`; `DNAProfile` -> `dna`, `profile`).
fn tokens(name: &str) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Class {
        Lower,
        Upper,
        Digit,
    }
    let class = |c: char| {
        if c.is_ascii_lowercase() {
            Some(Class::Lower)
        } else if c.is_ascii_uppercase() {
            Some(Class::Upper)
        } else if c.is_ascii_digit() {
            Some(Class::Digit)
        } else {
            None
        }
    };
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let Some(this) = class(c) else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        };
        let prev = i.checked_sub(1).and_then(|p| class(chars[p]));
        let next = chars.get(i + 1).copied().and_then(class);
        let boundary = match (prev, this) {
            (None, _) => false,
            (Some(Class::Digit), t) | (Some(t), Class::Digit) if t != Class::Digit => true,
            (Some(Class::Digit), _) => false,
            (Some(Class::Lower), Class::Upper) => true,
            // The last capital of an acronym starts the next word: `DNAProfile`.
            (Some(Class::Upper), Class::Upper) => next == Some(Class::Lower),
            _ => false,
        };
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenises_snake_kebab_camel_and_digits() {
        assert_eq!(tokens("monthly_income"), ["monthly", "income"]);
        assert_eq!(tokens("monthlyIncome"), ["monthly", "income"]);
        assert_eq!(tokens("Monthly-Income.v2"), ["monthly", "income", "v", "2"]);
        assert_eq!(tokens("DNAProfile"), ["dna", "profile"]);
        assert_eq!(tokens("income2023"), ["income", "2023"]);
        assert_eq!(tokens("2023income"), ["2023", "income"]);
        assert_eq!(tokens("  blood type "), ["blood", "type"]);
        assert_eq!(tokens("INCOME"), ["income"]);
        assert_eq!(tokens("月收入_amount"), ["amount"]);
        assert!(tokens("").is_empty());
    }

    #[test]
    fn r_data_3_english_single_terms() {
        let cases = [
            ("income", "income"),
            ("monthly_income", "income"),
            ("monthlyIncome", "income"),
            ("ANNUAL_SALARY", "income"),
            ("wages", "income"),
            ("religion", "religion"),
            ("religious_affiliation", "religion"),
            ("gene_test", "genes"),
            ("genetic_markers", "genes"),
            ("dnaSample", "genes"),
            ("genome", "genes"),
            ("fingerprint_hash", "fingerprints"),
            ("rightFingerprints", "fingerprints"),
            ("illness", "illness or medical history"),
            ("chronic-disease", "illness or medical history"),
            ("diagnosis", "illness or medical history"),
            ("medical_notes", "illness or medical history"),
            ("marital_status", "marital status"),
            ("MaritalStatus", "marital status"),
            ("marriage_date", "marital status"),
            ("bank_deposits", "deposits"),
            ("deposit", "deposits"),
            ("securities_held", "securities"),
            ("stocks", "securities"),
            ("bloodtype", "blood type"),
            ("realestate", "real estate"),
            ("realty_owned", "real estate"),
            ("income2023", "income"),
        ];
        for (name, want) in cases {
            assert_eq!(prohibited_term(name), Some(want), "{name}");
        }
    }

    #[test]
    fn r_data_3_english_pairs() {
        let cases = [
            ("blood_type", "blood type"),
            ("bloodGroup", "blood type"),
            ("real_estate_count", "real estate"),
            ("owned_real_property", "real estate"),
            ("medical_history", "illness or medical history"),
            ("commercial_insurance", "commercial insurance"),
            ("lifeInsurancePolicy", "commercial insurance"),
            ("tax_amount", "tax amount"),
            ("annual_tax_paid", "tax amount"),
            ("TaxPayable", "tax amount"),
            ("tax-payment", "tax amount"),
            ("tax sum", "tax amount"),
            ("taxes_paid", "tax amount"),
        ];
        for (name, want) in cases {
            assert_eq!(prohibited_term(name), Some(want), "{name}");
        }
    }

    #[test]
    fn r_data_3_chinese_terms() {
        let cases = [
            ("婚姻状况", "marital status"),
            ("宗教信仰", "religion"),
            ("基因检测", "genes"),
            ("指纹", "fingerprints"),
            ("血型", "blood type"),
            ("疾病史", "illness or medical history"),
            ("既往病史", "illness or medical history"),
            ("病历号", "illness or medical history"),
            ("月收入", "income"),
            ("工资总额", "income"),
            ("薪酬", "income"),
            ("存款余额", "deposits"),
            ("持有有价证券", "securities"),
            ("证券账户", "securities"),
            ("商业保险", "commercial insurance"),
            ("不动产登记", "real estate"),
            ("房产数量", "real estate"),
            ("纳税额", "tax amount"),
            ("年度纳税数额", "tax amount"),
            ("纳税金额", "tax amount"),
            ("应纳税额", "tax amount"),
            ("personal_收入", "income"),
        ];
        for (name, want) in cases {
            assert_eq!(prohibited_term(name), Some(want), "{name}");
        }
    }

    #[test]
    fn r_data_3_names_real_categories_need_are_not_prohibited() {
        let allowed = [
            "social_insurance",
            "housing_fund",
            "intellectual_property",
            "tax_status",
            "tax_credit_grade",
            "general",
            "general_notes",
            "property_type",
            "arrears_amount",
            "fine_amount",
            "tax_authority",
            "tax_period",
            "insurance_type",
            "contribution_status",
            "decision_no",
            "legal_representative",
            "registered_capital",
            "stock",
            "realm",
            "genesis",
            "incomeless", // one token, not "income"
            "社会保险",
            "住房公积金",
            "欠费金额",
            "纳税信用等级",
            "",
        ];
        for name in allowed {
            assert_eq!(prohibited_term(name), None, "{name}");
        }
    }

    #[test]
    fn article_is_cited() {
        assert!(PROHIBITED_ARTICLE.contains("art. 11"));
        assert!(PROHIBITED_ARTICLE.contains("art. 15"));
    }
}
