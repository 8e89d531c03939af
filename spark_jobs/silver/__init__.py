"""Silver jobs: cleaned, typed, validated datasets rebuilt from bronze."""
