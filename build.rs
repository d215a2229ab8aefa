// The prompt and `cd` hooks run awsmfa many times a minute. As a position-
// independent executable it spends most of its startup applying ~27k relative
// relocations and faulting in the pages they touch; linked at a fixed address
// it has none, which halves the cost of `awsmfa prompt`.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
