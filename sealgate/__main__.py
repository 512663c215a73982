from sealgate.cli import main

main()
