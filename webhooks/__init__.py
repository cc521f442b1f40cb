"""The webhook receiver (Flask): verifies CRM events, stores them in the inbox, answers fast;
``connector.sync.worker`` applies them. Also the ops endpoints and the reports page."""
