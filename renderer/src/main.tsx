// Entry point: one API (Electron preload bridge or the web host's WebSocket), one store fed by its
// events, one React root.

import { createRoot } from 'react-dom/client';
import { App } from './App';
import { createApi } from './api';
import { StoreProvider } from './store/context';
import { createStore } from './store/store';
import './styles.css';

const store = createStore(createApi());
void store.getState().start();

createRoot(document.getElementById('root')!).render(
  <StoreProvider store={store}>
    <App />
  </StoreProvider>,
);
