"""IO managers: where asset values are stored, so asset bodies hold no paths or formats."""
