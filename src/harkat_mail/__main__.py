"""``python -m harkat_mail`` runs the command line."""

from .cli import main

main()
