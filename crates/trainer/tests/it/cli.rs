//! The `trainer` binary: exit codes and one plain error line, no panic.

use std::process::Command;

fn trainer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.current_dir(crate::repo());
    c
}

#[test]
fn bad_input_exits_2_with_one_plain_message() {
    let out = trainer()
        .args(["--config", "no-such.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: config file `no-such.toml` not found"),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let out = trainer()
        .args(["--config", "xor", "--set", "train.lr=0", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("`train.lr` must be a positive number (got 0) (set by --set)"),
        "{err}"
    );
}

#[test]
fn xor_from_the_command_line_reports_success_and_the_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let out = trainer()
        .args(["--config", "xor.toml", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("XOR learned: all 4 points classified correctly."),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("run folder: {}", out_dir.display())),
        "{stdout}"
    );
    // The same --out again is refused rather than overwritten.
    let again = trainer()
        .args(["--config", "xor.toml", "--quiet", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8(again.stderr)
            .unwrap()
            .contains("is not empty")
    );
}
