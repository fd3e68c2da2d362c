//! `synwall man` and `synwall completions`: manual pages and shell completions generated from the
//! clap definition, so they cannot disagree with the real flags.

use anyhow::Context as _;
use clap::Args;
use clap_complete::Shell;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `synwall man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write synwall.1 and one page per subcommand (synwall-run.1, synwall-cookie-generate.1, ...)
    /// into this directory (created if missing). Without it the top page goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Flags of `synwall completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Write the manual pages. `cmd` is the binary's `Cli::command()`.
pub fn man(cmd: clap::Command, args: ManArgs) -> anyhow::Result<ExitCode> {
    match args.out {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing the man page to stdout")?;
            out.flush().context("writing the man page to stdout")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for p in write_pages(cmd, &dir)? {
                println!("{}", p.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One page per visible command, depth first; returns the files written.
fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    // `build` gives subcommands their full display names (synwall-cookie-generate), which name
    // the page files; `help` would only get a page that repeats --help.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    fn walk(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let path = clap_mangen::Man::new(cmd.clone())
            .generate_to(dir)
            .with_context(|| {
                format!(
                    "writing the page of {} into {}",
                    cmd.get_name(),
                    dir.display()
                )
            })?;
        written.push(path);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, dir, written)?;
        }
        Ok(())
    }
    walk(&cmd, dir, &mut written)?;
    Ok(written)
}

/// Write a completion script for `args.shell` to stdout.
pub fn completions(mut cmd: clap::Command, args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let name = cmd.get_name().to_string();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, name, &mut out);
    out.flush()
        .context("writing the completion script to stdout")?;
    Ok(ExitCode::SUCCESS)
}
