//! With the `layer-loader` feature (set for `cargo lambda build` in the workspace's Cargo.toml, so for `sam build`),
//! the function's binary (the encoder's, and ingest's, whose Cargo.toml names this script) starts under the C
//! runtime that the MediaLibrariesLayer carries in /opt/lib instead of the Lambda OS's: Debian's FFmpeg libraries
//! need a newer glibc (2.36) than provided.al2023 has (2.34). DT_RPATH (not RUNPATH) puts /opt/lib ahead of Lambda's
//! LD_LIBRARY_PATH, so no library of the OS is mixed in.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_LAYER_LOADER").is_none() {
        return;
    }
    let loader = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "ld-linux-aarch64.so.1",
        _ => "ld-linux-x86-64.so.2",
    };
    println!("cargo:rustc-link-arg-bins=-Wl,--dynamic-linker=/opt/lib/{loader}");
    println!("cargo:rustc-link-arg-bins=-Wl,--disable-new-dtags,-rpath,/opt/lib");
}
