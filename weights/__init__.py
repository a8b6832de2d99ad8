"""The pretrained networks bundled with lstm_ref, in its native format, with model cards.

Installed as the package ``lstm_ref.weights``; load one with
``lstm_ref.load_network("JapaneseVowelsNet")``.
"""
