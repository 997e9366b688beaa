import { render } from 'preact';
import { initialLang } from './i18n.js';
import { boot } from './state/session.js';
import { state } from './state/store.js';
import { App } from './ui/App.js';
import './styles.css';

state.lang = initialLang(localStorage.getItem('parley.lang'), navigator.language);
document.documentElement.lang = state.lang;
render(<App />, document.getElementById('app')!);
void boot();
