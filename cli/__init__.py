"""bcoder's command line: a typer app whose commands live one module each."""
