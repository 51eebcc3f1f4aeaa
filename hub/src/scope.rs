//! Who may see and do what: the one place the roles are interpreted.
//! Operators see and do everything (an exchange's content only with a
//! recorded reason); auditors see every record's metadata and change
//! nothing; a coordinator acts for its country, narrowed to an area or a
//! region when delegated, and reads the content of its country's exchanges
//! until their data are blocked. Every API handler (and the console) asks here;
//! none interprets a role itself.

use imi_schemas::ids::{AreaCode, CountryCode};
use thiserror::Error;

use crate::accounts::{Account, AccountRole};

/// Refused by the caller's scope; the message says why, for the caller.
#[derive(Debug, Error)]
#[error("{0}")]
pub(crate) struct Denied(String);

/// What an account may see and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Operators: everything.
    Operator,
    /// Auditors: read everything, change nothing.
    Auditor,
    /// A coordinator of `country`; delegated ones for one area or region.
    Coordinator {
        country: Option<CountryCode>,
        area: Option<AreaCode>,
        region: Option<String>,
    },
}

/// What an action is about, as far as scope goes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Target<'a> {
    /// The country of the authority (or originator) concerned.
    pub(crate) country: &'a str,
    /// The area of the procedure(s) concerned, when the action has one.
    pub(crate) area: Option<&'a str>,
    /// The region of the authority concerned, when it has one.
    pub(crate) region: Option<&'a str>,
}

/// The parties of an exchange, as far as visibility goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parties<'a> {
    pub(crate) requester: &'a str,
    /// The 1:1 responder; empty for 1:N.
    pub(crate) responder: &'a str,
    /// The 1:N recipients; empty for 1:1.
    pub(crate) recipients: &'a [String],
    /// A held 1:N draft is only its originator's country's business.
    pub(crate) released: bool,
}

/// How much of an exchange a caller sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// Everything (its operator, an auditor, the originator's country).
    Whole,
    /// Only what concerns this country's authorities (a recipient country
    /// of a 1:N exchange).
    CountryPart(String),
}

/// Whether a caller may read an exchange's content (its payloads, where the
/// personal data are): need-to-know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadAccess {
    /// A coordinator of a party's country, while the data are not blocked.
    Granted,
    /// An operator: only with a reason, recorded in the audit log (blocked
    /// data too, as proof).
    WithReason,
    /// Not at all; the message key says why (auditors read metadata only;
    /// a recipient country sees its part of an alert's deliveries; blocked
    /// data are hidden from every normal view).
    Denied(&'static str),
}

impl Scope {
    /// Need-to-know for an exchange the caller sees with `visibility`;
    /// `blocked` once its retention blocked its personal data.
    /// `area` is the exchange's legislative area, when known: a coordinator
    /// delegated for another area reads none of its content.
    pub(crate) fn payload_access(
        &self,
        visibility: &Visibility,
        blocked: bool,
        area: Option<&str>,
    ) -> PayloadAccess {
        match (self, visibility) {
            (Scope::Auditor, _) => PayloadAccess::Denied("exchange.auditor_metadata"),
            (Scope::Operator, _) => PayloadAccess::WithReason,
            (Scope::Coordinator { .. }, Visibility::CountryPart(_)) => {
                PayloadAccess::Denied("exchange.part_only")
            }
            (
                Scope::Coordinator {
                    area: Some(delegated),
                    ..
                },
                Visibility::Whole,
            ) if area.is_some_and(|a| a != delegated.as_str()) => {
                PayloadAccess::Denied("exchange.other_area")
            }
            (Scope::Coordinator { .. }, Visibility::Whole) if blocked => {
                PayloadAccess::Denied("exchange.blocked_hidden")
            }
            (Scope::Coordinator { .. }, Visibility::Whole) => PayloadAccess::Granted,
        }
    }

    pub(crate) fn of(account: &Account) -> Scope {
        match account.role {
            AccountRole::Operator => Scope::Operator,
            AccountRole::Auditor => Scope::Auditor,
            AccountRole::Coordinator => Scope::Coordinator {
                country: account.country,
                area: account.area.clone(),
                region: account.region.clone(),
            },
        }
    }

    /// The country a list is limited to; `None` for all.
    pub(crate) fn country_filter(&self) -> Option<String> {
        match self {
            Scope::Coordinator { country, .. } => {
                // A coordinator without a country sees nothing: filter on a
                // country no authority has.
                Some(country.map(|c| c.to_string()).unwrap_or_default())
            }
            _ => None,
        }
    }

    /// The country, area and region a list of coordinator notices is
    /// limited to (`None` each: all).
    pub(crate) fn office_filter(&self) -> (Option<String>, Option<String>, Option<String>) {
        match self {
            Scope::Coordinator { area, region, .. } => (
                self.country_filter(),
                area.as_ref().map(|a| a.to_string()),
                region.clone(),
            ),
            _ => (None, None, None),
        }
    }

    /// May the caller change something about `target`? Operators may;
    /// auditors never; a coordinator in its own country, and when delegated
    /// only within its area (if the action has one) and its region.
    pub(crate) fn may_act(&self, target: Target<'_>) -> Result<(), Denied> {
        let (country, area, region) = match self {
            Scope::Operator => return Ok(()),
            Scope::Auditor => return Err(Denied("auditors have read-only access".into())),
            Scope::Coordinator {
                country,
                area,
                region,
            } => (country, area, region),
        };
        let own = country.map(|c| c.to_string()).unwrap_or_default();
        if own != target.country {
            return Err(Denied(format!(
                "a coordinator of {own} cannot act for an authority of {}",
                target.country
            )));
        }
        if let Some(delegated) = region {
            if target.region != Some(delegated.as_str()) {
                return Err(Denied(format!(
                    "a coordinator delegated for region `{delegated}` cannot act for {}",
                    target
                        .region
                        .map(|r| format!("region `{r}`"))
                        .unwrap_or_else(|| "an authority without a region".into())
                )));
            }
        }
        if let (Some(delegated), Some(concerned)) = (area, target.area) {
            if delegated.as_str() != concerned {
                return Err(Denied(format!(
                    "a coordinator delegated for area `{delegated}` cannot act in area `{concerned}`"
                )));
            }
        }
        Ok(())
    }

    /// How much of an exchange the caller may see, or why nothing.
    pub(crate) fn sees(&self, parties: Parties<'_>) -> Result<Visibility, Denied> {
        let Scope::Coordinator { country, .. } = self else {
            return Ok(Visibility::Whole);
        };
        let Some(mine) = country.map(|c| c.to_string()) else {
            return Err(Denied("a coordinator without a country".into()));
        };
        let of_mine = |authority: &str| authority.starts_with(mine.as_str());
        if of_mine(parties.requester) {
            return Ok(Visibility::Whole);
        }
        if parties.released && of_mine(parties.responder) && !parties.responder.is_empty() {
            return Ok(Visibility::Whole);
        }
        if parties.released && parties.recipients.iter().any(|r| of_mine(r)) {
            return Ok(Visibility::CountryPart(mine));
        }
        Err(Denied(format!(
            "no authority of {mine} is a party to this exchange"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator(country: &str, area: Option<&str>, region: Option<&str>) -> Scope {
        Scope::Coordinator {
            country: Some(CountryCode::try_from(country).unwrap()),
            area: area.map(|a| AreaCode::try_from(a).unwrap()),
            region: region.map(str::to_owned),
        }
    }

    fn target<'a>(country: &'a str, area: Option<&'a str>, region: Option<&'a str>) -> Target<'a> {
        Target {
            country,
            area,
            region,
        }
    }

    #[test]
    fn content_is_read_on_a_need_to_know_basis() {
        let whole = Visibility::Whole;
        let part = Visibility::CountryPart("AT".into());
        let fi = coordinator("FI", None, None);
        assert_eq!(
            fi.payload_access(&whole, false, Some("pq")),
            PayloadAccess::Granted
        );
        let fi_pq = coordinator("FI", Some("pq"), None);
        assert_eq!(
            fi_pq.payload_access(&whole, false, Some("pq")),
            PayloadAccess::Granted
        );
        assert!(matches!(
            fi_pq.payload_access(&whole, false, Some("gdpr")),
            PayloadAccess::Denied("exchange.other_area")
        ));
        assert!(matches!(
            fi.payload_access(&whole, true, None),
            PayloadAccess::Denied(_)
        ));
        assert!(matches!(
            fi.payload_access(&part, false, None),
            PayloadAccess::Denied(_)
        ));
        for blocked in [false, true] {
            assert_eq!(
                Scope::Operator.payload_access(&whole, blocked, None),
                PayloadAccess::WithReason
            );
            assert!(matches!(
                Scope::Auditor.payload_access(&whole, blocked, None),
                PayloadAccess::Denied("exchange.auditor_metadata")
            ));
        }
    }

    #[test]
    fn operators_act_everywhere_and_auditors_nowhere() {
        assert!(Scope::Operator
            .may_act(target("FI", Some("pq"), None))
            .is_ok());
        assert!(Scope::Auditor.may_act(target("FI", None, None)).is_err());
    }

    #[test]
    fn a_coordinator_acts_in_its_country_area_and_region_only() {
        let national = coordinator("FI", None, None);
        assert!(national.may_act(target("FI", Some("pq"), None)).is_ok());
        assert!(national.may_act(target("DE", Some("pq"), None)).is_err());
        let delegated = coordinator("FI", Some("pq"), None);
        assert!(delegated.may_act(target("FI", Some("pq"), None)).is_ok());
        assert!(delegated
            .may_act(target("FI", Some("services"), None))
            .is_err());
        let regional = coordinator("FI", None, Some("uusimaa"));
        assert!(regional
            .may_act(target("FI", None, Some("uusimaa")))
            .is_ok());
        assert!(regional.may_act(target("FI", None, Some("lappi"))).is_err());
        assert!(regional.may_act(target("FI", None, None)).is_err());
    }

    #[test]
    fn a_coordinator_sees_exchanges_of_its_country_and_its_part_of_alerts() {
        let fi = coordinator("FI", None, None);
        let request = Parties {
            requester: "DE-AEKNO",
            responder: "FI-VALVIRA",
            recipients: &[],
            released: true,
        };
        assert_eq!(fi.sees(request).unwrap(), Visibility::Whole);
        let recipients = vec!["FI-VALVIRA".to_owned(), "AT-X".to_owned()];
        let alert = Parties {
            requester: "DE-AEKNO",
            responder: "",
            recipients: &recipients,
            released: true,
        };
        assert_eq!(
            fi.sees(alert).unwrap(),
            Visibility::CountryPart("FI".into())
        );
        let draft = Parties {
            released: false,
            ..alert
        };
        assert!(fi.sees(draft).is_err());
        assert!(coordinator("SE", None, None).sees(request).is_err());
        assert_eq!(Scope::Auditor.sees(draft).unwrap(), Visibility::Whole);
    }

    #[test]
    fn lists_are_filtered_to_the_coordinators_country() {
        assert_eq!(Scope::Operator.country_filter(), None);
        assert_eq!(
            coordinator("FI", Some("pq"), None).office_filter(),
            (Some("FI".into()), Some("pq".into()), None)
        );
    }
}
