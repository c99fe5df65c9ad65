"""How the kit reaches servers: secret values behind references, and ODBC connections."""
