"""The Streamlit UI's own modules. The UI talks to the fashion-search API over HTTP only."""
