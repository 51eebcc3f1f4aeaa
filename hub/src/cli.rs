//! The `imi-hub` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::{catalogue, telemetry, Config, Hub};

#[derive(Parser)]
#[command(
    name = "imi-hub",
    about = "IMI Hub: the AMQP integration hub of the Internal Market Information system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub until SIGINT/SIGTERM, then drain and stop.
    Run {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
    },
    /// API accounts (operators, coordinators, auditors).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Work with the procedure catalogue.
    Catalogue {
        #[command(subcommand)]
        command: CatalogueCommand,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Encryption at rest of stored payloads.
    Encryption {
        #[command(subcommand)]
        command: EncryptionCommand,
    },
    /// Data-subject requests.
    Subjects {
        #[command(subcommand)]
        command: SubjectsCommand,
    },
}

#[derive(Subcommand)]
enum EncryptionCommand {
    /// Seal every stored payload that is plain or under an earlier key with
    /// `encryption.key_file`, now (running hubs also do it after their
    /// start and every hour), and print how many there were.
    Reseal {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum SubjectsCommand {
    /// Rebuild the index of who payloads are about with the current
    /// `subjects.index_key_file` (after a new key, or for messages stored
    /// before the index existed), while the hub runs.
    Reindex {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and check every signed checkpoint; the last
    /// line is `audit: N entries, chain intact` (exit 0) or names the first
    /// broken entry (exit 1).
    Verify {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        /// Checkpoints kept outside the database (`audit.checkpoint_file`),
        /// checked too.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account and print its bearer token (shown once).
    Create {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        #[arg(long)]
        name: String,
        /// operator, coordinator or auditor
        #[arg(long)]
        role: String,
        /// The country a coordinator acts for.
        #[arg(long)]
        country: Option<String>,
        /// The legislative area a delegated coordinator acts for.
        #[arg(long)]
        area: Option<String>,
        /// The region a delegated coordinator acts for.
        #[arg(long)]
        region: Option<String>,
        /// Also give it a password for the web console, read from the
        /// first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum CatalogueCommand {
    /// Check a catalogue folder; exits non-zero on any error.
    Check {
        #[arg(default_value = "schemas/catalogue")]
        dir: PathBuf,
    },
}

/// Entry point shared by the `imi-hub` binary and the test harness's copy.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run { config } => {
                telemetry::init();
                let hub = Hub::build(Config::load(&config)?).await?;
                tracing::info!(http = %hub.http_addr(), "Listening.");
                // On standard output as well, whatever the log level: with
                // `http.listen` on port 0 this is how a supervisor or a test
                // learns the port the system chose.
                println!("listening on http://{}", hub.http_addr());
                hub.run_until_stopped(shutdown_signal()).await?;
            }
            Command::Account {
                command:
                    AccountCommand::Create {
                        config,
                        name,
                        role,
                        country,
                        area,
                        region,
                        password_stdin,
                    },
            } => {
                let password = if password_stdin {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    let password = line.trim_end_matches(['\r', '\n']).to_owned();
                    anyhow::ensure!(
                        password.chars().count() >= 12,
                        "a console password has at least 12 characters"
                    );
                    Some(password)
                } else {
                    None
                };
                let config = Config::load(&config)?;
                let role = crate::accounts::AccountRole::try_from(role.as_str())
                    .map_err(anyhow::Error::msg)?;
                let country = country
                    .as_deref()
                    .map(imi_schemas::ids::CountryCode::try_from)
                    .transpose()?;
                let area = area
                    .as_deref()
                    .map(imi_schemas::ids::AreaCode::try_from)
                    .transpose()?;
                let pool =
                    crate::app::connect_database(config.database.url.expose_secret(), 1).await?;
                sqlx::migrate!("../migrations").run(&pool).await?;
                let (account, token) = crate::accounts::create(
                    &pool,
                    &name,
                    role,
                    crate::accounts::Scope {
                        country,
                        area,
                        region,
                    },
                )
                .await?;
                if let Some(password) = &password {
                    crate::accounts::set_password(&pool, account.id, password).await?;
                }
                eprintln!(
                    "account {} ({}) created{}; its API token is shown once:",
                    account.name,
                    role.as_str(),
                    if password.is_some() {
                        ", with a console password"
                    } else {
                        ""
                    }
                );
                println!("{token}");
            }
            Command::Migrate { config } => {
                telemetry::init();
                let config = Config::load(&config)?;
                let pool =
                    crate::app::connect_database(config.database.url.expose_secret(), 1).await?;
                sqlx::migrate!("../migrations").run(&pool).await?;
                println!("migrations applied");
            }
            Command::Audit {
                command:
                    AuditCommand::Verify {
                        config,
                        checkpoints,
                    },
            } => {
                let config = Config::load(&config)?;
                let pool =
                    crate::app::connect_database(config.database.url.expose_secret(), 1).await?;
                let external = match &checkpoints {
                    Some(path) => crate::audit_log::checkpoints::read_file(path)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                    None => Vec::new(),
                };
                // The hub's own key, when this machine has it: checkpoints
                // signed by any other key do not count.
                let trusted = config
                    .audit
                    .signing_key_file
                    .exists()
                    .then(|| {
                        crate::audit_log::checkpoints::Signer::load_or_create(
                            &config.audit.signing_key_file,
                        )
                    })
                    .transpose()?
                    .map(|s| s.public_key());
                let verdict = crate::audit_log::verify::verify(&pool, &external, trusted).await?;
                if verdict.broken.is_none() {
                    println!(
                        "{} signed checkpoints hold ({} kept outside the database)",
                        verdict.checkpoints,
                        external.len()
                    );
                }
                println!("{}", verdict.last_line());
                if verdict.broken.is_some() {
                    std::process::exit(1);
                }
            }
            Command::Encryption {
                command: EncryptionCommand::Reseal { config },
            } => {
                telemetry::init();
                let config = Config::load(&config)?;
                let keys = crate::at_rest::DataKeys::load(
                    config.encryption.key_file.as_ref(),
                    &config.encryption.previous_key_files,
                )?;
                if !keys.enabled() {
                    anyhow::bail!("encryption.key_file is not set: nothing to seal with");
                }
                let pool =
                    crate::app::connect_database(config.database.url.expose_secret(), 2).await?;
                sqlx::migrate!("../migrations").run(&pool).await?;
                let resealed = crate::at_rest::Reencryption::new(pool, keys)
                    .run_once()
                    .await?;
                println!("encryption: {resealed} stored payloads sealed with the current key");
            }
            Command::Subjects {
                command: SubjectsCommand::Reindex { config },
            } => {
                telemetry::init();
                let config = Config::load(&config)?;
                let pool =
                    crate::app::connect_database(config.database.url.expose_secret(), 1).await?;
                sqlx::migrate!("../migrations").run(&pool).await?;
                let catalogue = catalogue::load(&config.catalogue_dir)?;
                let keyer =
                    crate::subjects::SubjectKeyer::load_or_create(&config.subjects.index_key_file)?;
                let read = crate::subjects::reindex(&pool, &catalogue, &keyer).await?;
                let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM subject_index")
                    .fetch_one(&pool)
                    .await?;
                println!("subjects: {read} messages read, {entries} index entries");
            }
            Command::Catalogue {
                command: CatalogueCommand::Check { dir },
            } => {
                let report = catalogue::check(&dir)?;
                for e in &report.errors {
                    println!("error: {e}");
                }
                println!(
                    "areas: {}, procedures: {}, languages complete: {}/24",
                    report.areas, report.procedures, report.languages_complete
                );
                if !report.errors.is_empty() {
                    std::process::exit(1);
                }
            }
        }
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
