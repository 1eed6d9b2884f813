from adsync.cli import main

main()
