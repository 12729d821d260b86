//! Property tests: parsers never panic on arbitrary input, quantities survive their own
//! printed forms, and label selectors print back to what they parsed from.

use proptest::prelude::*;
use slipway_model::fields::FieldSelector;
use slipway_model::labels::{Operator, Requirement, Selector};
use slipway_model::quantity::ParsedQuantity;

/// Strings shaped like quantities, so that most of them parse and exercise the arithmetic.
fn quantity_like() -> impl Strategy<Value = String> {
    "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?(|[eE][-+]?[0-9]{1,2}|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)"
}

fn label_key() -> impl Strategy<Value = String> {
    "([a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?(\\.[a-z0-9]{1,5})?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?"
}

fn label_value() -> impl Strategy<Value = String> {
    "([A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?)?"
}

fn requirement() -> impl Strategy<Value = Requirement> {
    let operator = prop_oneof![
        Just(Operator::Equals),
        Just(Operator::DoubleEquals),
        Just(Operator::NotEquals),
        Just(Operator::In),
        Just(Operator::NotIn),
        Just(Operator::Exists),
        Just(Operator::DoesNotExist),
        Just(Operator::GreaterThan),
        Just(Operator::LessThan),
    ];
    (
        label_key(),
        operator,
        prop::collection::vec(label_value(), 1..4),
        any::<u32>(),
    )
        .prop_map(|(key, operator, values, number)| {
            let values = match operator {
                Operator::In | Operator::NotIn => values,
                Operator::Exists | Operator::DoesNotExist => Vec::new(),
                Operator::GreaterThan | Operator::LessThan => vec![number.to_string()],
                _ => values[..1].to_vec(),
            };
            Requirement::new(&key, operator, values).expect("generated requirements are valid")
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn label_selector_parse_never_panics(s in any::<String>()) {
        let _ = Selector::parse(&s);
    }

    #[test]
    fn label_selector_parse_of_selector_alphabet_never_panics(s in "[a-z!=(), <>in]{0,40}") {
        if let Ok(selector) = Selector::parse(&s) {
            prop_assert_eq!(Selector::parse(&selector.to_string()).unwrap(), selector);
        }
    }

    #[test]
    fn field_selector_parse_never_panics(s in any::<String>()) {
        let _ = FieldSelector::parse(&s);
    }

    #[test]
    fn field_selector_prints_back(s in "[a-z.=!,\\\\]{0,30}") {
        if let Ok(selector) = FieldSelector::parse(&s) {
            prop_assert_eq!(FieldSelector::parse(&selector.to_string()).unwrap(), selector);
        }
    }

    #[test]
    fn quantity_parse_never_panics(s in any::<String>()) {
        let _ = ParsedQuantity::parse(&s);
    }

    #[test]
    fn quantity_forms_reparse_equal(s in quantity_like()) {
        if let Ok(quantity) = ParsedQuantity::parse(&s) {
            let canonical = quantity.canonical();
            let reparsed = ParsedQuantity::parse(&canonical).unwrap();
            prop_assert_eq!(&reparsed, &quantity, "{} -> {}", s, canonical);
            prop_assert_eq!(reparsed.canonical(), canonical);
            let shown = ParsedQuantity::parse(&quantity.to_string()).unwrap();
            prop_assert_eq!(&shown, &quantity);
            let _ = (quantity.as_value(), quantity.as_milli());
        }
    }

    #[test]
    fn quantity_sums_are_exact(a in quantity_like(), b in quantity_like()) {
        if let (Ok(a), Ok(b)) = (ParsedQuantity::parse(&a), ParsedQuantity::parse(&b))
            && let Ok(sum) = a.checked_add(&b)
        {
            prop_assert_eq!(sum.as_nanos(), a.as_nanos() + b.as_nanos());
            prop_assert_eq!(sum.checked_sub(&b).unwrap(), a);
        }
    }

    #[test]
    fn label_selector_round_trips(requirements in prop::collection::vec(requirement(), 0..5)) {
        let selector = Selector::from_requirements(requirements);
        let printed = selector.to_string();
        let parsed = Selector::parse(&printed).unwrap();
        prop_assert_eq!(&parsed, &selector, "{}", printed);
        prop_assert_eq!(parsed.to_string(), printed);
    }
}
