"""The app page's settings: the text-back settings form (sub-account and agency defaults), the live
preview's sample values, the "send me a test text" button, and the agency's one page."""
