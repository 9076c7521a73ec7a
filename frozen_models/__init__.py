"""The shipped frozen models: face CNN, speech LSTM, fusion head, their TFLite exports and cards.

Load them through :func:`mer_gym.models.frozen.load_model`, which checks each file's sha256
against its card before Keras reads it.
"""
