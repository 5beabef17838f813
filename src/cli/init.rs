//! `kompoxops init`: scaffold `.kompox/`.

use anyhow::{Context, bail};

use super::GlobalArgs;
use super::output;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Overwrite an existing `.kompox/config.yml`.
    #[arg(short, long)]
    pub force: bool,
}

const CONFIG: &str = "version: 1\nstore:\n  type: local\n";

pub fn run(g: &GlobalArgs, args: &InitArgs) -> anyhow::Result<i32> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let dir = match &g.chdir {
        Some(d) => cwd.join(d),
        None => cwd,
    };
    let kdir = dir.join(".kompox");
    let config = kdir.join("config.yml");
    if config.exists() && !args.force {
        bail!(
            "`{}` already exists (use --force to overwrite it)",
            config.display()
        );
    }
    for sub in ["kom", "logs"] {
        std::fs::create_dir_all(kdir.join(sub))
            .with_context(|| format!("cannot create `{}`", kdir.join(sub).display()))?;
    }
    std::fs::write(&config, CONFIG)
        .with_context(|| format!("cannot write `{}`", config.display()))?;
    std::fs::write(kdir.join(".gitignore"), "logs/\n")
        .context("cannot write .kompox/.gitignore")?;
    output::stdout(&format!(
        "Initialized Kompox project in {}\n",
        kdir.display()
    ));
    Ok(0)
}
