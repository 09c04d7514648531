from prospectpro.cli import main

main()
