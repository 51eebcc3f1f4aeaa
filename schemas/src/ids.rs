//! Parsed identifiers. Raw strings from the wire are converted once, at the
//! edge, with `TryFrom`; everything past the edge holds these types.

use std::fmt;

use thiserror::Error;
use uuid::Uuid;

/// Why a raw identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("`{0}` is not a UUID")]
    NotAUuid(String),
    #[error("`{0}` is not an official EU/EEA country code (two capital letters)")]
    Country(String),
    #[error("`{0}` is not an authority id (`CC-NAME`: country code, dash, 1-60 of A-Z 0-9 -)")]
    Authority(String),
    #[error("`{0}` is not an endpoint id (1-63 of a-z 0-9 -, starting with a letter or digit)")]
    Endpoint(String),
    #[error("`{0}` is not a code (1-63 of a-z 0-9 -)")]
    Code(String),
    #[error("`{0}` is not a message type (`<procedure>.<action>`)")]
    MessageType(String),
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new(id: Uuid) -> Self {
                Self(id)
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(raw: &str) -> Result<Self, IdError> {
                Uuid::parse_str(raw.trim())
                    .map(Self)
                    .map_err(|_| IdError::NotAUuid(raw.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// The idempotency key of one message (AMQP `message_id`).
    MessageId
);
uuid_id!(
    /// One case for its whole life: a request thread or one alert.
    ExchangeId
);

/// Namespace for ids the hub derives from others, so that a retry derives the
/// same id and the receiver's de-duplication absorbs it.
const DERIVED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1d_5a0e_3c3f_4a53_9f0e_9d7e_1b1d_0001);

impl MessageId {
    /// A message id derived from this one for a given purpose (`receipt`,
    /// `rejection`, …): the same input always yields the same id.
    pub fn derive(&self, purpose: &str) -> MessageId {
        let mut name = self.0.as_bytes().to_vec();
        name.extend_from_slice(purpose.as_bytes());
        MessageId(Uuid::new_v5(&DERIVED_ID_NAMESPACE, &name))
    }

    /// The exchange a message opens: derived, so a redelivered opening message
    /// opens the same exchange.
    pub fn opened_exchange(&self) -> ExchangeId {
        ExchangeId(self.derive("exchange").0)
    }
}

/// The official EU member states plus the EEA states that take part in IMI.
const COUNTRIES: &[&str] = &[
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "IS", "LI", "NO",
    // Not a country: the Commission and Union bodies, which IMI treats as
    // actors of their own (`EU-COMMISSION`).
    "EU",
];

/// A country code as IMI uses it (EU style: Greece is `EL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// `EU`: the Commission and Union bodies, not a Member State.
    pub fn is_commission(&self) -> bool {
        &self.0 == b"EU"
    }
    pub fn as_str(&self) -> &str {
        // Constructed only from two ASCII capitals.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl TryFrom<&str> for CountryCode {
    type Error = IdError;
    fn try_from(raw: &str) -> Result<Self, IdError> {
        if COUNTRIES.contains(&raw) {
            let b = raw.as_bytes();
            Ok(Self([b[0], b[1]]))
        } else {
            Err(IdError::Country(raw.to_owned()))
        }
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A competent authority: `CC-NAME`, the country prefix is part of the id so
/// every party sees at a glance where an authority is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthorityId(String);

impl AuthorityId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn country(&self) -> CountryCode {
        // Validated at construction.
        CountryCode::try_from(&self.0[..2]).expect("authority id starts with a country code")
    }
}

impl TryFrom<&str> for AuthorityId {
    type Error = IdError;
    fn try_from(raw: &str) -> Result<Self, IdError> {
        let err = || IdError::Authority(raw.to_owned());
        let (country, rest) = raw.split_once('-').ok_or_else(err)?;
        CountryCode::try_from(country).map_err(|_| err())?;
        let ok = (1..=60).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(err())
        }
    }
}

impl fmt::Display for AuthorityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_code(raw: &str) -> bool {
    (1..=63).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.starts_with('-')
}

/// One connected system: its broker user name and the suffix of its inbox queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(String);

impl EndpointId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for EndpointId {
    type Error = IdError;
    fn try_from(raw: &str) -> Result<Self, IdError> {
        if is_code(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::Endpoint(raw.to_owned()))
        }
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! code_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(raw: &str) -> Result<Self, IdError> {
                if is_code(raw) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(IdError::Code(raw.to_owned()))
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_id!(
    /// A legislative area, e.g. `pq` (professional qualifications).
    AreaCode
);
code_id!(
    /// A procedure, e.g. `pq-information-request`.
    ProcedureCode
);
code_id!(
    /// An action of a procedure's workflow, e.g. `send`, `answer`.
    ActionCode
);

/// The AMQP `type` property: `<procedure>.<action>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageType {
    pub procedure: ProcedureCode,
    pub action: ActionCode,
}

impl TryFrom<&str> for MessageType {
    type Error = IdError;
    fn try_from(raw: &str) -> Result<Self, IdError> {
        let err = || IdError::MessageType(raw.to_owned());
        let (procedure, action) = raw.split_once('.').ok_or_else(err)?;
        Ok(Self {
            procedure: ProcedureCode::try_from(procedure).map_err(|_| err())?,
            action: ActionCode::try_from(action).map_err(|_| err())?,
        })
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.procedure, self.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_ids_carry_their_country() {
        let id = AuthorityId::try_from("FI-VALVIRA").unwrap();
        assert_eq!(id.country().as_str(), "FI");
        assert!(AuthorityId::try_from("XX-VALVIRA").is_err());
        assert!(AuthorityId::try_from("FI-").is_err());
        assert!(AuthorityId::try_from("FI-valvira").is_err());
        assert!(AuthorityId::try_from("FIVALVIRA").is_err());
    }

    #[test]
    fn message_types_split_into_procedure_and_action() {
        let t = MessageType::try_from("pq-information-request.send").unwrap();
        assert_eq!(t.procedure.as_str(), "pq-information-request");
        assert_eq!(t.action.as_str(), "send");
        assert!(MessageType::try_from("pq-information-request").is_err());
        assert!(MessageType::try_from("a.b.c").is_err());
        assert!(MessageType::try_from("PQ.send").is_err());
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let id = MessageId::try_from("0b9c1c6e-7f7e-4a53-9f0e-9d7e1b1d0001").unwrap();
        assert_eq!(id.derive("receipt"), id.derive("receipt"));
        assert_ne!(id.derive("receipt"), id.derive("rejection"));
        assert_ne!(id.derive("receipt"), id);
    }

    #[test]
    fn endpoint_ids_are_lowercase_codes() {
        assert!(EndpointId::try_from("fi-gateway-1").is_ok());
        assert!(EndpointId::try_from("FI").is_err());
        assert!(EndpointId::try_from("-x").is_err());
        assert!(EndpointId::try_from("").is_err());
    }
}
