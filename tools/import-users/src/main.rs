//! `import-users [--dry-run] [--media-from <MEDIA_ROOT>] <export.json>`: imports a Django
//! `dumpdata accounts.User token_blacklist` export into the store the usual environment variables
//! configure (`STORAGE`, `DATA_DIR`, `USERS_TABLE`, ...), and with `--media-from` copies the
//! avatar files into the configured media store (`MEDIA_DIR` or `MEDIA_BUCKET`).
//! Exit status: 0 when every record was imported or already there, 2 when some were rejected
//! (listed in the summary), 1 when the import could not run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use accounts::config::{Config, StorageConfig};
use accounts::store::dynamodb::{self, DynamoStore};
use accounts::store::sqlite::SqliteStore;
use accounts::store::Store;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

const USAGE: &str = "usage: import-users [--dry-run] [--media-from <MEDIA_ROOT>] <dumpdata-export.json>
  Imports the users of the old Django service and its token blacklist
  (manage.py dumpdata accounts.User token_blacklist) into the store configured by the
  environment (STORAGE, DATA_DIR, DYNAMODB_ENDPOINT, USERS_TABLE, BLACKLIST_TABLE, ...).
  Ids and password hashes are kept; running it again skips what is already there.
  --media-from  the old service's MEDIA_ROOT: avatar files are copied into the media store
                (MEDIA_DIR, or MEDIA_BUCKET) under the same keys; missing files are listed.
  --dry-run     read and check everything, write nothing, and say what a real run would do.";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("import-users: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> anyhow::Result<ExitCode> {
    let (mut path, mut media_from, mut dry_run) = (None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            "--dry-run" => dry_run = true,
            "--media-from" => media_from = Some(PathBuf::from(args.next().context("--media-from needs a folder")?)),
            _ if path.is_none() && !arg.starts_with('-') => path = Some(arg),
            _ => {
                eprintln!("{USAGE}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    let Some(path) = path else {
        eprintln!("{USAGE}");
        return Ok(ExitCode::from(1));
    };
    if let Some(root) = &media_from {
        anyhow::ensure!(root.is_dir(), "--media-from {}: not a folder", root.display());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let records = import_users::parse_export(&text).with_context(|| format!("{path} is not a dumpdata JSON list"))?;
    let config = Config::from_env().context("configuration")?;
    let store: Arc<dyn Store> = match &config.storage {
        StorageConfig::Embedded { data_dir } => {
            Arc::new(SqliteStore::open(data_dir).context("opening the embedded store")?)
        }
        StorageConfig::DynamoDb { tables, endpoint } => {
            Arc::new(DynamoStore::new(dynamodb::client(endpoint.as_deref()).await, tables.clone()))
        }
    };
    let media = match &media_from {
        Some(_) => Some(accounts::state::open_media(&config).await.context("opening the media store")?),
        None => None,
    };
    let options = import_users::Options { dry_run, media: media_from.as_deref().zip(media.as_deref()) };
    // Drawn on stderr only when it is a terminal.
    let users = records.iter().filter(|r| !r.model.starts_with("token_blacklist.")).count();
    let bar = ProgressBar::new(users as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} users ({per_sec}, {eta} left)").expect("a valid template"),
    );
    let now = accounts::domain::now();
    let summary = import_users::import_all(&*store, &records, options, now, |_| bar.inc(1)).await;
    bar.finish_and_clear();
    print!("{summary}");
    Ok(if summary.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
