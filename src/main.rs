//! The `tessera` command: serve (default) and the operator's management commands.
use std::{io::Write, process::ExitCode};

use clap::{Parser, Subcommand};
use tessera::audit::{AuditEvents, AuditLayer};
use tessera::{
    AppState, Application, Settings, StartError,
    domain::{
        DomainError,
        groups::Actor,
        import::{Collision, DjangoExport as ImportExport, ImportOptions},
        users::Registration,
    },
    settings::LogFormat,
    store::database,
};
use tracing_subscriber::EnvFilter;

/// Identity and token service compatible with Djoser and djangorestframework-simplejwt.
///
/// Settings: config/default.toml, the file named by TESSERA_CONFIG, TESSERA__SECTION__KEY
/// variables, DATABASE_URL and REDIS_URL.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Development mode: allows a missing (ephemeral) or short JWT signing key.
    #[arg(long, global = true)]
    dev: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a staff superuser, interactively or from flags.
    Createsuperuser {
        /// The username (asked for when missing and interactive).
        #[arg(long)]
        username: Option<String>,
        /// The email address (optional).
        #[arg(long)]
        email: Option<String>,
        /// Never prompt; the password comes from TESSERA_SUPERUSER_PASSWORD.
        #[arg(long)]
        no_input: bool,
    },
    /// Change a user's password (prompted twice).
    Changepassword {
        /// Whose password to change.
        username: String,
    },
    /// Print USERNAME's opaque key, creating it if needed (like DRF's drf_create_token).
    CreateToken {
        username: String,
        /// Replace the user's existing keys with a new one.
        #[arg(short, long)]
        reset: bool,
    },
    /// Manage groups and their members as the operator (no staff account needed).
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Second factors, as the operator.
    Mfa {
        #[command(subcommand)]
        command: MfaCommand,
    },
    /// Delete expired refresh-token records and revocations (the server also does it every
    /// `jwt.prune_interval`).
    FlushExpiredTokens,
    /// Import a Django project: users (ids, password hashes, flags, dates), groups, DRF token
    /// keys and SimpleJWT's outstanding and blacklisted refresh tokens. Run it again to bring
    /// changes over: it reports created / updated / unchanged / skipped.
    ImportDjango {
        /// The Django project's database (postgres://... or sqlite://path), read only.
        #[arg(
            long = "from",
            conflicts_with = "dumpdata",
            required_unless_present = "dumpdata"
        )]
        from: Option<String>,
        /// A `manage.py dumpdata auth authtoken token_blacklist --natural-foreign` file.
        #[arg(long)]
        dumpdata: Option<std::path::PathBuf>,
        /// Report what would change without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// A username equal to an earlier one but for case (Django allows `Bob` and `bob`):
        /// skip it, or import it as `name-<django id>`.
        #[arg(long, value_enum, default_value_t = OnCollision::Skip)]
        on_collision: OnCollision,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Exit 0 when the local server answers /health/ready (for container health checks).
    Healthcheck,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnCollision {
    Skip,
    Suffix,
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create a group.
    Create {
        /// Its unique name.
        name: String,
        /// What the group is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a group and its memberships.
    Delete { name: String },
    /// Add USERNAME to the group NAME.
    AddUser { name: String, username: String },
    /// Remove USERNAME from the group NAME.
    RemoveUser { name: String, username: String },
    /// Without NAME: every group with its member count and description (tab-separated);
    /// with NAME: its members' usernames.
    List {
        /// The group whose members to list.
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum MfaCommand {
    /// Remove USERNAME's TOTP factor, recovery codes and pending logins (a lost device): the
    /// next login needs the password only, and the user may enrol again. Audited.
    Reset { username: String },
}

/// glibc's allocator contends on its arena locks under many small per-request allocations;
/// mimalloc measured ~10% more verify throughput here (benches/load.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc returns freed memory to the OS only when a later free empties one of its pages
/// more than a second after the memory was freed; an idle server frees no pages, so the tens
/// of MB freed after start-up (or after a burst) would stay resident. Freeing a block of a page
/// of its own every two seconds is such a free (and costs nothing measurable).
async fn give_back_freed_memory() {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        ticks.tick().await;
        drop(std::hint::black_box(Vec::<u8>::with_capacity(1 << 20)));
    }
}

fn main() -> ExitCode {
    ordinary_pages_only();
    start()
}

/// With transparent huge pages on (`always` is the default of many Linux hosts, this one
/// included), every 2 MiB stretch of heap the allocator touches becomes resident whole: 12 of
/// the 21 MB of heap resident at idle were such pages. The heap is small and its hot part fits
/// the TLB either way, so the process asks for ordinary pages, before the runtime's threads
/// allocate. A kernel without the switch keeps its default; nothing else depends on it.
fn ordinary_pages_only() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

#[tokio::main]
async fn start() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        println!("{}", tessera::http::openapi_json());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::load() {
        Ok(s) => Settings { dev: cli.dev, ..s },
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(2);
        }
    };
    let audit = init_tracing(&settings);
    match run(cli.command.unwrap_or(Command::Serve), settings, audit).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    command: Command,
    settings: Settings,
    audit: Option<AuditEvents>,
) -> Result<(), CliError> {
    match command {
        Command::Serve => {
            let mut app = Application::build(settings).await?;
            if let Some(events) = audit {
                app.keep_audit_events(events);
            }
            if let Some(addr) = app.local_addr() {
                tracing::info!(%addr, "serving; docs at http://{addr}/docs");
            }
            tokio::spawn(give_back_freed_memory());
            Ok(app.run_until(shutdown_signal()).await?)
        }
        Command::Migrate => {
            let db = database::connect(&settings.database).await?;
            database::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Createsuperuser {
            username,
            email,
            no_input,
        } => {
            let state = AppState::connect(settings).await?;
            createsuperuser(&state, username, email, no_input).await
        }
        Command::Changepassword { username } => {
            let state = AppState::connect(settings).await?;
            let user = user_named(&state, &username).await?;
            let password = prompt_password_twice()?;
            state
                .accounts
                .set_password_as_operator(user, &password)
                .await?;
            println!("Password changed successfully for user '{username}'");
            Ok(())
        }
        Command::CreateToken { username, reset } => {
            let state = AppState::connect(settings).await?;
            let user = user_named(&state, &username).await?;
            let key = state
                .opaque
                .key_for(
                    &user,
                    &tessera::domain::sessions::Client {
                        ip: None,
                        user_agent: "tessera create-token",
                    },
                    reset,
                )
                .await?;
            println!("Generated token {key} for user {username}");
            Ok(())
        }
        Command::Group { command } => {
            let state = AppState::connect(settings).await?;
            Ok(group(&state, command).await?)
        }
        Command::Mfa {
            command: MfaCommand::Reset { username },
        } => {
            let state = AppState::connect(settings).await?;
            let user = user_named(&state, &username).await?;
            if state.mfa.reset(&user).await? {
                println!("TOTP removed for user '{username}'.");
            } else {
                println!("User '{username}' had no TOTP factor.");
            }
            Ok(())
        }
        Command::FlushExpiredTokens => {
            let state = AppState::connect(settings).await?;
            let removed = state.tokens.prune().await? + state.mfa.prune().await?;
            println!("{removed} expired token records deleted");
            Ok(())
        }
        Command::ImportDjango {
            from,
            dumpdata,
            dry_run,
            on_collision,
        } => {
            let export = match (from, dumpdata) {
                (Some(url), _) => tessera::store::django::from_database(&url).await?,
                (None, Some(path)) => {
                    tessera::store::django::from_dumpdata(&std::fs::read_to_string(path)?)?
                }
                (None, None) => return Err(CliError::Usage("--from or --dumpdata is needed")),
            };
            let state = AppState::connect(settings).await?;
            let options = ImportOptions {
                dry_run,
                collision: match on_collision {
                    OnCollision::Skip => Collision::Skip,
                    OnCollision::Suffix => Collision::Suffix,
                },
            };
            let report = import_django(&state, export, options).await?;
            print!("{report}");
            Ok(())
        }
        Command::Openapi => Ok(()),
        Command::Healthcheck => healthcheck(settings.server.bind),
    }
}

async fn createsuperuser(
    state: &AppState,
    username: Option<String>,
    email: Option<String>,
    no_input: bool,
) -> Result<(), CliError> {
    let (username, email, password) = if no_input {
        let username = username.ok_or(CliError::Usage("--username is required with --no-input"))?;
        let password = std::env::var("TESSERA_SUPERUSER_PASSWORD").map_err(|_| {
            CliError::Usage("TESSERA_SUPERUSER_PASSWORD must be set with --no-input")
        })?;
        (username, email.unwrap_or_default(), password)
    } else {
        let username = match username {
            Some(u) => u,
            None => prompt("Username: ")?,
        };
        let email = match email {
            Some(e) => e,
            None => prompt("Email address: ")?,
        };
        (username, email, prompt_password_twice()?)
    };
    let user = state
        .users
        .register(Registration {
            username,
            email,
            password,
            is_staff: true,
            is_superuser: true,
            is_active: true,
        })
        .await?;
    println!("Superuser '{}' created (id {}).", user.username, user.id);
    Ok(())
}

/// `tessera group ...`: the domain's group rules, acting as the operator.
async fn group(state: &AppState, command: GroupCommand) -> Result<(), DomainError> {
    let groups = &state.groups;
    match command {
        GroupCommand::Create { name, description } => {
            groups.create(Actor::Operator, &name, &description).await?;
            println!("Group '{name}' created.");
        }
        GroupCommand::Delete { name } => {
            groups.delete(Actor::Operator, &name).await?;
            println!("Group '{name}' deleted.");
        }
        GroupCommand::AddUser { name, username } => {
            groups.add_member(Actor::Operator, &name, &username).await?;
            println!("User '{username}' added to group '{name}'.");
        }
        GroupCommand::RemoveUser { name, username } => {
            groups
                .remove_member(Actor::Operator, &name, &username)
                .await?;
            println!("User '{username}' removed from group '{name}'.");
        }
        GroupCommand::List { name: None } => {
            for (group, members) in groups.list_with_member_counts(Actor::Operator).await? {
                println!("{}\t{members}\t{}", group.name, group.description);
            }
        }
        GroupCommand::List { name: Some(name) } => {
            for user in groups.members(Actor::Operator, &name).await? {
                println!("{}", user.username);
            }
        }
    }
    Ok(())
}

/// A bare HTTP/1.0 GET of /health/ready on the configured port (no curl in the image).
fn healthcheck(bind: std::net::SocketAddr) -> Result<(), CliError> {
    use std::{io::Read, net::TcpStream, time::Duration};
    let ip = if bind.ip().is_unspecified() {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        bind.ip()
    };
    let addr = std::net::SocketAddr::new(ip, bind.port());
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(b"GET /health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    if head.ends_with(b" 200") {
        Ok(())
    } else {
        Err(CliError::NotReady(
            String::from_utf8_lossy(&head).into_owned(),
        ))
    }
}

async fn user_named(
    state: &AppState,
    username: &str,
) -> Result<tessera::domain::users::User, CliError> {
    state
        .users
        .named(username)
        .await?
        .ok_or_else(|| CliError::NoSuchUser(username.to_owned()))
}

fn prompt(label: &str) -> Result<String, CliError> {
    print!("{label}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

fn prompt_password_twice() -> Result<String, CliError> {
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password (again): ")?;
    if first != second {
        return Err(CliError::Usage("Error: Your passwords didn't match."));
    }
    Ok(first)
}

/// Why a command failed, as one line (or one line per field error) for the operator.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{}", explain(.0))]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] tessera::domain::StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("user '{0}' does not exist")]
    NoSuchUser(String),
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("{0}")]
    Usage(&'static str),
    #[error(transparent)]
    Django(#[from] tessera::store::django::DjangoSourceError),
}

/// Runs the import with a progress bar on a terminal, plain lines otherwise.
async fn import_django(
    state: &AppState,
    export: ImportExport,
    options: ImportOptions,
) -> Result<String, CliError> {
    use std::io::IsTerminal;
    let total = export.users.len() as u64;
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| indicatif::ProgressBar::new(total).with_message("users"));
    let progress = |done: u64, total: u64| match &bar {
        Some(bar) => bar.set_position(done),
        None => eprintln!("users: {done}/{total}"),
    };
    let report = state.importer.run(export, options, &progress).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut out = String::new();
    let verb = if options.dry_run { "(dry run) " } else { "" };
    use std::fmt::Write as _;
    let _ = writeln!(out, "{}users: {}", verb, report.users);
    let _ = writeln!(out, "{}groups: {}", verb, report.groups);
    let _ = writeln!(out, "{}token keys: {}", verb, report.keys);
    let _ = writeln!(out, "{}refresh tokens: {}", verb, report.refresh_tokens);
    for line in &report.skipped {
        let _ = writeln!(out, "skipped: {line}");
    }
    for part in &report.missing {
        let _ = writeln!(out, "not in the source: {part}");
    }
    if options.dry_run {
        let _ = writeln!(out, "dry run: nothing was written");
    }
    Ok(out)
}

/// Field errors as lines an operator can read.
fn explain(e: &DomainError) -> String {
    match e {
        DomainError::Invalid(errors) => errors
            .iter()
            .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// Logs to stderr (stdout carries command output: keys, the OpenAPI document); with
/// `audit.store_in_sql`, also the audit layer, whose events are handed back for the SQL writer.
fn init_tracing(settings: &Settings) -> Option<AuditEvents> {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match settings.log.format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
        LogFormat::Pretty => fmt.boxed(),
    };
    let (audit, receiver) = match settings.audit.store_in_sql {
        true => {
            let (layer, receiver) = AuditLayer::new();
            (Some(layer), Some(receiver))
        }
        false => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(audit)
        .init();
    receiver
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}
