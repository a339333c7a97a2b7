//! `import-users <export.json>`: imports a Django `dumpdata accounts.User` export into the store
//! the usual environment variables configure (`STORAGE`, `DATA_DIR`, `USERS_TABLE`, ...).
//! Exit status: 0 when every record was imported or already there, 2 when some were rejected
//! (listed in the summary), 1 when the import could not run.

use std::process::ExitCode;
use std::sync::Arc;

use accounts::config::{Config, StorageConfig};
use accounts::store::dynamodb::{self, DynamoStore};
use accounts::store::sqlite::SqliteStore;
use accounts::store::UserStore;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

const USAGE: &str = "usage: import-users <dumpdata-export.json>
  Imports the users of the old Django service (manage.py dumpdata accounts.User) into the store
  configured by the environment (STORAGE, DATA_DIR, DYNAMODB_ENDPOINT, USERS_TABLE, ...).
  Ids and password hashes are kept; running it again skips users already imported.";

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("{USAGE}");
        return Ok(ExitCode::from(1));
    };
    if path == "-h" || path == "--help" {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let records = import_users::parse_export(&text).with_context(|| format!("{path} is not a dumpdata JSON list"))?;
    let config = Config::from_env().context("configuration")?;
    let store: Arc<dyn UserStore> = match &config.storage {
        StorageConfig::Embedded { data_dir } => {
            Arc::new(SqliteStore::open(data_dir).context("opening the embedded store")?)
        }
        StorageConfig::DynamoDb { tables, endpoint } => {
            Arc::new(DynamoStore::new(dynamodb::client(endpoint.as_deref()).await, tables.clone()))
        }
    };
    // Drawn on stderr only when it is a terminal.
    let bar = ProgressBar::new(records.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} users ({per_sec}, {eta} left)").expect("a valid template"),
    );
    let summary = import_users::import_all(&*store, &records, |_| bar.inc(1)).await;
    bar.finish_and_clear();
    print!("{summary}");
    Ok(if summary.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
