fn main() -> std::process::ExitCode {
    kelviq_server::cli::main()
}
