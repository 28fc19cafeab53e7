// mimalloc: the server allocates many small, short-lived objects per request
// (JSON values, strings); glibc's malloc showed as a fifth of the CPU time in
// `kelviq-bench`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kelviq_server::cli::main()
}
