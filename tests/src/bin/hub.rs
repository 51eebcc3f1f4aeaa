fn main() -> anyhow::Result<()> {
    imi_hub::cli::main()
}
