//! The command-line contract (README, Command line and Exit codes): subcommands, exit codes,
//! completions.

use crate::util::{code, resetctl, stderr, stdout};

#[test]
fn unknown_subcommand_is_invalid_input() {
    let out = resetctl(&["frobnicate"]);
    assert_eq!(code(&out), 1, "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("unrecognized subcommand"));
}

#[test]
fn help_lists_every_subcommand_and_exits_zero() {
    let out = resetctl(&["--help"]);
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for sub in [
        "validate",
        "plan",
        "run",
        "runs",
        "readiness",
        "tabletop",
        "reset",
        "serve",
        "emulator",
        "audit",
        "render",
        "completions",
        "man",
    ] {
        assert!(help.contains(sub), "--help does not mention {sub}:\n{help}");
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = resetctl(&["completions", shell]);
        assert_eq!(code(&out), 0, "{shell}");
        assert!(
            stdout(&out).contains("validate"),
            "{shell} completion lacks subcommands"
        );
    }
}
