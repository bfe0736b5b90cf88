"""`python -m zoomkit` (and `torchrun -m zoomkit`) runs the CLI."""

from zoomkit.cli import main

if __name__ == "__main__":
    main()
