from breakglass_cli.main import main

main()
