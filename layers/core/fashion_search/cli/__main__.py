from fashion_search.cli import main

main()
