from nutapp.cli import run

run()
