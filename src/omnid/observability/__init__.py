"""Operations: Prometheus metrics, health endpoints and their HTTP exposition for every process."""
