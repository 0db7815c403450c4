"""The five stream-processing services of offsetstream, one package per stage."""
