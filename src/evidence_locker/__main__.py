from evidence_locker.cli import main

main()
