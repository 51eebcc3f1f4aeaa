//! Broker URLs, built and read with the `url` crate (percent-encoding
//! included) rather than by hand.

use url::Url;

/// The URL lapin connects with: `base` (`amqp://[user:password@]host:port`)
/// with `vhost` as its one path segment (percent-encoded, so the default
/// vhost `/` is `%2F`), `credentials` in place of any in `base`, and a 10 s
/// heartbeat so a dead peer is noticed.
pub fn connection_url(
    base: &str,
    vhost: &str,
    credentials: Option<(&str, &str)>,
) -> Result<String, url::ParseError> {
    let mut url = Url::parse(base)?;
    if let Some((user, password)) = credentials {
        // Only a URL without a host refuses credentials; parse found one.
        let _ = url.set_username(user);
        let _ = url.set_password(Some(password));
    }
    url.set_path("");
    url.path_segments_mut()
        .map_err(|()| url::ParseError::RelativeUrlWithCannotBeABaseBase)?
        .push(vhost);
    // The base's own parameters (e.g. `auth_mechanism=external`) stay.
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "heartbeat")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    url.query_pairs_mut()
        .extend_pairs(kept)
        .append_pair("heartbeat", "10");
    Ok(url.into())
}

/// The user name in `amqp://user:password@host`, if any.
pub fn user_of(base: &str) -> Option<String> {
    let url = Url::parse(base).ok()?;
    let user = url.username();
    (!user.is_empty()).then(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhosts_and_credentials_are_percent_encoded() {
        assert_eq!(
            connection_url("amqp://g:g@h:5672/", "/", None).unwrap(),
            "amqp://g:g@h:5672/%2F?heartbeat=10"
        );
        assert_eq!(
            connection_url("amqp://g:g@h:5672", "imi-t1", None).unwrap(),
            "amqp://g:g@h:5672/imi-t1?heartbeat=10"
        );
        assert_eq!(
            connection_url("amqp://h:5672", "imi", Some(("fi-gw", "p@ss/w:rd"))).unwrap(),
            "amqp://fi-gw:p%40ss%2Fw%3Ard@h:5672/imi?heartbeat=10"
        );
        assert_eq!(
            user_of("amqp://guest:guest@h:5672").as_deref(),
            Some("guest")
        );
        assert_eq!(user_of("amqp://h:5672"), None);
    }

    #[test]
    fn the_bases_own_parameters_stay() {
        assert_eq!(
            connection_url(
                "amqps://h:5671?auth_mechanism=external&heartbeat=60",
                "imi",
                None
            )
            .unwrap(),
            "amqps://h:5671/imi?auth_mechanism=external&heartbeat=10"
        );
    }
}
