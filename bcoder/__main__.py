from bcoder.cli.main import main

main()
